//! Managed prefix lists of the EC2 API (the AWS CLI): a group rule naming
//! the list admits the template's database to an API instance; the list's
//! entries changed, it no longer does; versions, entries, the AWS-managed
//! lists, and a list in use not deleted.
use vpc_tests::{connects, peer_server};

use super::{aws, group, network, ok, run_instance, s, up, Instance, Network};

#[test]
fn a_rule_naming_an_api_prefix_list_follows_its_entries() {
    let (d, url) = up("ec2pl");
    let Network { vpc, subnet, .. } = network(&d);
    let made = ok(
        &url,
        &[
            "create-managed-prefix-list",
            "--prefix-list-name",
            "db-hosts",
            "--address-family",
            "IPv4",
            "--max-entries",
            "5",
            "--entries",
            "Cidr=10.42.1.10/32,Description=the database",
        ],
    );
    let pl = s(&made["PrefixList"]["PrefixListId"]);
    assert!(pl.starts_with("pl-") && pl.len() == 20, "{made}");
    let sg = group(&url, &vpc, "web");
    ok(
        &url,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--ip-permissions",
            &format!(
                "IpProtocol=tcp,FromPort=7200,ToPort=7200,PrefixListIds=[{{PrefixListId={pl}}}]"
            ),
        ],
    );
    let groups = ok(&url, &["describe-security-groups", "--group-ids", &sg]);
    assert_eq!(
        groups["SecurityGroups"][0]["IpPermissions"][0]["PrefixListIds"][0]["PrefixListId"],
        pl.as_str(),
        "{groups}"
    );
    let Instance { id, ip, ns, .. } = run_instance(&d, &url, &subnet, &sg, None);
    let _server = peer_server(&ns, &format!("{ip}:7200"));
    assert!(
        connects(&d, "exec", "Db", &ip, 7200, 5),
        "the list holds the database's address"
    );

    // The entries changed (at the version it has): the rule follows.
    let e = aws(
        &url,
        &[
            "modify-managed-prefix-list",
            "--prefix-list-id",
            &pl,
            "--current-version",
            "2",
            "--add-entries",
            "Cidr=10.42.9.0/24",
        ],
    )
    .unwrap_err();
    assert!(e.contains("(PrefixListVersionMismatch)"), "{e}");
    ok(
        &url,
        &[
            "modify-managed-prefix-list",
            "--prefix-list-id",
            &pl,
            "--current-version",
            "1",
            "--remove-entries",
            "Cidr=10.42.1.10/32",
            "--add-entries",
            "Cidr=10.42.9.0/24",
        ],
    );
    assert!(
        !connects(&d, "exec", "Db", &ip, 7200, 1),
        "the database's address is no longer in the list"
    );
    let entries = ok(
        &url,
        &["get-managed-prefix-list-entries", "--prefix-list-id", &pl],
    );
    assert_eq!(entries["Entries"][0]["Cidr"], "10.42.9.0/24", "{entries}");
    assert_eq!(entries["Entries"].as_array().unwrap().len(), 1);
    let desc = ok(
        &url,
        &["describe-managed-prefix-lists", "--prefix-list-ids", &pl],
    );
    assert_eq!(desc["PrefixLists"][0]["Version"], 2, "{desc}");
    assert_eq!(desc["PrefixLists"][0]["PrefixListName"], "db-hosts");
    let managed = ok(
        &url,
        &[
            "describe-managed-prefix-lists",
            "--filters",
            "Name=owner-id,Values=AWS",
        ],
    );
    assert!(
        managed["PrefixLists"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["PrefixListName"] == "com.amazonaws.us-east-1.s3"),
        "{managed}"
    );

    // In use: not deleted; free: deleted.
    let e = aws(
        &url,
        &["delete-managed-prefix-list", "--prefix-list-id", &pl],
    )
    .unwrap_err();
    assert!(e.contains("(DependencyViolation)"), "{e}");
    ok(&url, &["terminate-instances", "--instance-ids", &id]);
    ok(
        &url,
        &[
            "revoke-security-group-ingress",
            "--group-id",
            &sg,
            "--ip-permissions",
            &format!(
                "IpProtocol=tcp,FromPort=7200,ToPort=7200,PrefixListIds=[{{PrefixListId={pl}}}]"
            ),
        ],
    );
    ok(
        &url,
        &["delete-managed-prefix-list", "--prefix-list-id", &pl],
    );
    let e = aws(
        &url,
        &["describe-managed-prefix-lists", "--prefix-list-ids", &pl],
    )
    .unwrap_err();
    assert!(e.contains("(InvalidPrefixListID.NotFound)"), "{e}");
}
