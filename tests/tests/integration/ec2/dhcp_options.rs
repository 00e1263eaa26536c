//! DHCP options sets of the EC2 API (the AWS CLI): associated with the
//! template's VPC, the database instance's `resolv.conf` takes the set's
//! servers and domain, back to AWS's default with `default`; a set in use
//! is not deleted.
use super::{aws, network, ok, s, up};

#[test]
fn a_dhcp_options_set_of_the_api_changes_a_hosts_resolv_conf() {
    let (d, url) = up("ec2dopt");
    let vpc = network(&d).vpc;
    let resolv = || {
        std::fs::read_to_string(
            std::path::Path::new("/etc/netns")
                .join(d.netns("Db"))
                .join("resolv.conf"),
        )
        .unwrap()
    };
    assert!(resolv().contains("search ec2.internal"), "{}", resolv());
    let made = ok(
        &url,
        &[
            "create-dhcp-options",
            "--dhcp-configurations",
            "Key=domain-name,Values=corp.example",
            "Key=domain-name-servers,Values=AmazonProvidedDNS,10.42.1.53",
        ],
    );
    let dopt = s(&made["DhcpOptions"]["DhcpOptionsId"]);
    assert!(dopt.starts_with("dopt-"), "{made}");
    let conf = made["DhcpOptions"]["DhcpConfigurations"]
        .as_array()
        .unwrap();
    assert_eq!(conf[0]["Key"], "domain-name", "{made}");
    assert_eq!(conf[1]["Values"][1]["Value"], "10.42.1.53", "{made}");
    ok(
        &url,
        &[
            "associate-dhcp-options",
            "--dhcp-options-id",
            &dopt,
            "--vpc-id",
            &vpc,
        ],
    );
    let r = resolv();
    assert!(
        r.contains("nameserver 10.42.0.2\nnameserver 10.42.1.53\n")
            && r.contains("search corp.example"),
        "{r}"
    );
    let vpcs = ok(&url, &["describe-vpcs", "--vpc-ids", &vpc]);
    assert_eq!(vpcs["Vpcs"][0]["DhcpOptionsId"], dopt.as_str(), "{vpcs}");
    let found = ok(
        &url,
        &[
            "describe-dhcp-options",
            "--filters",
            "Name=key,Values=domain-name",
            "Name=value,Values=corp.*",
        ],
    );
    assert_eq!(found["DhcpOptions"][0]["DhcpOptionsId"], dopt.as_str());
    let e = aws(&url, &["delete-dhcp-options", "--dhcp-options-id", &dopt]).unwrap_err();
    assert!(e.contains("(DependencyViolation)"), "{e}");

    // `default`: AWS's default options again.
    ok(
        &url,
        &[
            "associate-dhcp-options",
            "--dhcp-options-id",
            "default",
            "--vpc-id",
            &vpc,
        ],
    );
    let r = resolv();
    assert!(
        r.contains("search ec2.internal") && !r.contains("10.42.1.53"),
        "{r}"
    );
    ok(&url, &["delete-dhcp-options", "--dhcp-options-id", &dopt]);
    let e = aws(
        &url,
        &["describe-dhcp-options", "--dhcp-options-ids", &dopt],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidDhcpOptionID.NotFound)"), "{e}");
    let e = aws(
        &url,
        &[
            "associate-dhcp-options",
            "--dhcp-options-id",
            &dopt,
            "--vpc-id",
            &vpc,
        ],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidDhcpOptionID.NotFound)"), "{e}");
}
