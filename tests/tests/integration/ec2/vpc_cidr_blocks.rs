//! Secondary IPv4 blocks of the EC2 API: AssociateVpcCidrBlock gives the
//! template's VPC (10.42.0.0/16) a second block, a subnet and an instance
//! go in it, and real connections cross the two blocks both ways as the
//! groups allow (and no further); AWS's refusals and DescribeVpcs' view.
use vpc_tests::{connects, peer_server, tcp_server, wait_for};

use super::{allow, aws, group, network, ok, run_instance, s, subnet, up, Instance, Network};

#[test]
fn a_secondary_block_holds_a_subnet_whose_instance_reaches_the_primary_and_back() {
    let (d, url) = up("ec2cidr");
    let Network { vpc, db_sg, .. } = network(&d);
    let associate = |cidr: &str| {
        aws(
            &url,
            &[
                "associate-vpc-cidr-block",
                "--vpc-id",
                &vpc,
                "--cidr-block",
                cidr,
            ],
        )
    };
    let a = associate("10.43.0.0/16").unwrap();
    let a = &a["CidrBlockAssociation"];
    assert_eq!(a["CidrBlockState"]["State"], "associating", "{a}");
    assert_eq!(a["CidrBlock"], "10.43.0.0/16", "{a}");
    let assoc = s(&a["AssociationId"]);
    // AWS's rules: another RFC 1918 range than the primary's, a block
    // overlapping the VPC's, AWS's reserved 198.19.0.0/16, a /29.
    for (cidr, code) in [
        ("172.16.0.0/16", "InvalidVpc.Range"),
        ("10.42.128.0/17", "InvalidVpc.Range"),
        ("10.43.0.0/24", "InvalidVpc.Range"),
        ("198.19.0.0/16", "InvalidVpc.Range"),
        ("10.44.0.0/29", "InvalidVpc.Range"),
    ] {
        let e = associate(cidr).unwrap_err();
        assert!(e.contains(&format!("({code})")), "{cidr}: {e}");
    }
    // DescribeVpcs: both blocks, found by the secondary one.
    let found = ok(
        &url,
        &[
            "describe-vpcs",
            "--filters",
            "Name=cidr-block-association.cidr-block,Values=10.43.0.0/16",
        ],
    );
    let blocks: Vec<String> = found["Vpcs"][0]["CidrBlockAssociationSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| s(&b["CidrBlock"]))
        .collect();
    assert_eq!(blocks, ["10.42.0.0/16", "10.43.0.0/16"], "{found}");
    assert_eq!(found["Vpcs"][0]["VpcId"], vpc.as_str());
    assert_eq!(found["Vpcs"][0]["CidrBlock"], "10.42.0.0/16", "the primary");
    let by_assoc = ok(
        &url,
        &[
            "describe-vpcs",
            "--filters",
            &format!("Name=cidr-block-association.association-id,Values={assoc}"),
        ],
    );
    assert_eq!(by_assoc["Vpcs"].as_array().unwrap().len(), 1, "{by_assoc}");

    // A subnet of the secondary block, an instance in it whose group
    // admits the primary block on 7100; the database admits the
    // secondary block on 5432.
    let subnet = subnet(&url, &vpc, "10.43.1.0/24");
    let web = group(&url, &vpc, "web");
    allow(&url, &web, "7100", "10.42.0.0/16");
    allow(&url, &db_sg, "5432", "10.43.0.0/16");
    let Instance { id, host, ns, .. } = run_instance(&d, &url, &subnet, &web, Some("10.43.1.10"));
    wait_for("the instance's namespace", 60, || {
        std::path::Path::new("/run/netns").join(&ns).exists()
    });
    // Secondary to primary and primary to secondary, through the router.
    let web_server = peer_server(&ns, "10.43.1.10:7100");
    assert!(
        connects(&d, "exec", "Db", "10.43.1.10", 7100, 5),
        "the database (primary block) reaches the instance (secondary block)"
    );
    assert!(
        !connects(&d, "exec", "Db", "10.43.1.10", 7101, 1),
        "the instance's group admits 7100 only"
    );
    web_server.stop();
    let db = tcp_server(&d.netns("Db"), "10.42.1.10:5432");
    assert!(
        connects(&d, "exec", &host, "10.42.1.10", 5432, 5),
        "the instance (secondary block) reaches the database (primary block)"
    );
    assert!(db.finish(30).is_some());

    // An IPv6 block beside it comes and goes alone.
    let v6 = ok(
        &url,
        &[
            "associate-vpc-cidr-block",
            "--vpc-id",
            &vpc,
            "--amazon-provided-ipv6-cidr-block",
        ],
    );
    let v6 = s(&v6["Ipv6CidrBlockAssociation"]["AssociationId"]);
    ok(
        &url,
        &["disassociate-vpc-cidr-block", "--association-id", &v6],
    );
    let now = ok(&url, &["describe-vpcs", "--vpc-ids", &vpc]);
    assert_eq!(
        now["Vpcs"][0]["CidrBlockAssociationSet"][1]["CidrBlock"], "10.43.0.0/16",
        "{now}"
    );
    // The primary block never goes; the secondary not while a subnet is in it.
    let primary = s(&found["Vpcs"][0]["CidrBlockAssociationSet"][0]["AssociationId"]);
    let disassociate = |id: &str| {
        aws(
            &url,
            &["disassociate-vpc-cidr-block", "--association-id", id],
        )
    };
    let e = disassociate(&primary).unwrap_err();
    assert!(e.contains("(OperationNotPermitted)"), "{e}");
    let e = disassociate(&assoc).unwrap_err();
    assert!(e.contains("(InvalidCidrBlock.InUse)"), "{e}");
    ok(&url, &["terminate-instances", "--instance-ids", &id]);
    ok(&url, &["delete-subnet", "--subnet-id", &subnet]);
    let gone = disassociate(&assoc).unwrap();
    assert_eq!(
        gone["CidrBlockAssociation"]["CidrBlockState"]["State"], "disassociating",
        "{gone}"
    );
    let after = ok(&url, &["describe-vpcs", "--vpc-ids", &vpc]);
    assert_eq!(
        after["Vpcs"][0]["CidrBlockAssociationSet"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{after}"
    );
}
