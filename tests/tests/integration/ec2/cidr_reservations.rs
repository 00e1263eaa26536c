//! Subnet CIDR reservations of the EC2 API: made, listed and deleted with
//! the AWS CLI, refused as EC2 refuses them, and honoured by automatic
//! address assignment: an interface made without an address in a subnet
//! whose next free addresses are reserved gets one past them, and the
//! template's database reaches it there.
use vpc_tests::{connects, peer_server};

use super::{allow, aws, group, network, ok, s, subnet, up, up_from, Network};

#[test]
fn reserved_addresses_are_skipped_and_the_interface_past_them_is_reached() {
    let (d, url) = up("ec2scr");
    let Network { vpc, subnet, db_sg } = network(&d);

    // 10.42.1.0/28 holds the next free addresses (.4 onwards; the database is .10).
    let made = ok(
        &url,
        &[
            "create-subnet-cidr-reservation",
            "--subnet-id",
            &subnet,
            "--cidr",
            "10.42.1.0/28",
            "--reservation-type",
            "explicit",
            "--description",
            "appliances",
        ],
    );
    let r = &made["SubnetCidrReservation"];
    let scr = s(&r["SubnetCidrReservationId"]);
    assert!(scr.starts_with("scr-"), "{made}");
    assert_eq!(r["Cidr"], "10.42.1.0/28", "{made}");
    assert_eq!(r["ReservationType"], "explicit", "{made}");
    assert_eq!(r["Description"], "appliances", "{made}");
    assert_eq!(r["SubnetId"], subnet.as_str(), "{made}");
    for (cidr, code, says) in [
        (
            "10.42.2.0/30",
            "InvalidParameterValue",
            "Reservation CIDR should be within subnet CIDR block (10.42.1.0/24)",
        ),
        (
            "10.42.1.8/29",
            "InvalidParameterValue",
            "Reservation CIDR 10.42.1.8/29 has overlap with existing reserved CIDR block",
        ),
    ] {
        let e = aws(
            &url,
            &[
                "create-subnet-cidr-reservation",
                "--subnet-id",
                &subnet,
                "--cidr",
                cidr,
                "--reservation-type",
                "prefix",
            ],
        )
        .unwrap_err();
        assert!(e.contains(&format!("({code})")) && e.contains(says), "{e}");
    }
    let listed = ok(
        &url,
        &["get-subnet-cidr-reservations", "--subnet-id", &subnet],
    );
    assert_eq!(
        listed["SubnetIpv4CidrReservations"][0]["SubnetCidrReservationId"],
        scr.as_str(),
        "{listed}"
    );
    assert_eq!(
        listed["SubnetIpv6CidrReservations"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "{listed}"
    );
    let none = ok(
        &url,
        &[
            "get-subnet-cidr-reservations",
            "--subnet-id",
            &subnet,
            "--filters",
            "Name=reservationType,Values=prefix",
        ],
    );
    assert_eq!(
        none["SubnetIpv4CidrReservations"].as_array().map(Vec::len),
        Some(0),
        "{none}"
    );

    // An interface without an address: the first one past the reservation.
    let sg = group(&url, &vpc, "appliance");
    allow(&url, &sg, "7200", &db_sg);
    let nic = ok(
        &url,
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--groups",
            &sg,
        ],
    );
    let nic = &nic["NetworkInterface"];
    assert_eq!(nic["PrivateIpAddress"], "10.42.1.16", "{nic}");
    let ns = format!("{}-eni", d.name);
    let ns = std::fs::read_dir("/run/netns")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with(&ns))
        .expect("the interface's namespace");
    let _server = peer_server(&ns, "10.42.1.16:7200");
    assert!(
        connects(&d, "exec", "Db", "10.42.1.16", 7200, 5),
        "the database reaches it past the reservation"
    );
    // An explicit address inside an `explicit` reservation is the owner's to give.
    let inside = ok(
        &url,
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--private-ip-address",
            "10.42.1.5",
        ],
    );
    assert_eq!(
        inside["NetworkInterface"]["PrivateIpAddress"], "10.42.1.5",
        "{inside}"
    );

    // Deleted: gone from the list, and the next automatic address is .4 again.
    let gone = ok(
        &url,
        &[
            "delete-subnet-cidr-reservation",
            "--subnet-cidr-reservation-id",
            &scr,
        ],
    );
    assert_eq!(
        gone["DeletedSubnetCidrReservation"]["SubnetCidrReservationId"],
        scr.as_str(),
        "{gone}"
    );
    let e = aws(
        &url,
        &[
            "delete-subnet-cidr-reservation",
            "--subnet-cidr-reservation-id",
            &scr,
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("(InvalidSubnetCidrReservationID.NotFound)"),
        "{e}"
    );
    let next = ok(&url, &["create-network-interface", "--subnet-id", &subnet]);
    assert_eq!(
        next["NetworkInterface"]["PrivateIpAddress"], "10.42.1.4",
        "{next}"
    );
}

/// AssociateSubnetCidrBlock gives an API subnet a /64 of its VPC's IPv6
/// block (refused outside it, or for a second one); an interface already
/// there keeps no IPv6 address; DisassociateSubnetCidrBlock is refused
/// while the block is in use (an IPv6 reservation) and then removes it.
#[test]
fn a_subnet_takes_an_ipv6_block_after_creation_and_gives_it_back() {
    let (_d, url) = up("ec2s6");
    let vpc = ok(
        &url,
        &[
            "create-vpc",
            "--cidr-block",
            "10.77.0.0/16",
            "--amazon-provided-ipv6-cidr-block",
        ],
    );
    let vpc_id = s(&vpc["Vpc"]["VpcId"]);
    let described = ok(&url, &["describe-vpcs", "--vpc-ids", &vpc_id]);
    let v6 = s(&described["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]);
    // The fourth /64 of the VPC's /56.
    let base: std::net::Ipv6Addr = v6.split('/').next().unwrap().parse().unwrap();
    let mut seg = base.segments();
    seg[3] += 3;
    let first = std::net::Ipv6Addr::from(seg);
    let block = format!("{first}/64");
    let subnet = subnet(&url, &vpc_id, "10.77.1.0/24");
    let nic = ok(&url, &["create-network-interface", "--subnet-id", &subnet]);
    let nic = s(&nic["NetworkInterface"]["NetworkInterfaceId"]);

    let associate = |block: &str| {
        aws(
            &url,
            &[
                "associate-subnet-cidr-block",
                "--subnet-id",
                &subnet,
                "--ipv6-cidr-block",
                block,
            ],
        )
    };
    let e = associate("2001:db8:ffff:1::/64").unwrap_err();
    assert!(e.contains("(InvalidSubnet.Range)"), "{e}");
    let a = associate(&block).unwrap();
    assert_eq!(a["SubnetId"], subnet.as_str(), "{a}");
    assert_eq!(
        a["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"],
        block.as_str(),
        "{a}"
    );
    assert_eq!(
        a["Ipv6CidrBlockAssociation"]["Ipv6CidrBlockState"]["State"], "associating",
        "{a}"
    );
    let assoc = s(&a["Ipv6CidrBlockAssociation"]["AssociationId"]);
    let disassociate = || {
        aws(
            &url,
            &["disassociate-subnet-cidr-block", "--association-id", &assoc],
        )
    };
    let e = associate(&block).unwrap_err();
    assert!(e.contains("(CidrLimitExceeded)"), "{e}");
    let sn = ok(&url, &["describe-subnets", "--subnet-ids", &subnet]);
    let set = &sn["Subnets"][0]["Ipv6CidrBlockAssociationSet"];
    assert_eq!(set[0]["AssociationId"], assoc.as_str(), "{sn}");
    assert_eq!(set[0]["Ipv6CidrBlockState"]["State"], "associated", "{sn}");
    let n = ok(
        &url,
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &nic,
        ],
    );
    assert_eq!(
        n["NetworkInterfaces"][0]["Ipv6Addresses"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "no IPv6 address added: {n}"
    );

    // In use (a reservation of the block): refused; then given back.
    let r = ok(
        &url,
        &[
            "create-subnet-cidr-reservation",
            "--subnet-id",
            &subnet,
            "--cidr",
            &format!("{first}/120"),
            "--reservation-type",
            "prefix",
        ],
    );
    let e = disassociate().unwrap_err();
    assert!(e.contains("(DependencyViolation)"), "{e}");
    ok(
        &url,
        &[
            "delete-subnet-cidr-reservation",
            "--subnet-cidr-reservation-id",
            &s(&r["SubnetCidrReservation"]["SubnetCidrReservationId"]),
        ],
    );
    let d = disassociate().unwrap();
    assert_eq!(
        d["Ipv6CidrBlockAssociation"]["Ipv6CidrBlockState"]["State"], "disassociating",
        "{d}"
    );
    let sn = ok(&url, &["describe-subnets", "--subnet-ids", &subnet]);
    assert_eq!(
        sn["Subnets"][0]["Ipv6CidrBlockAssociationSet"]
            .as_array()
            .map_or(0, Vec::len),
        0,
        "{sn}"
    );
    let e = disassociate().unwrap_err();
    assert!(
        e.contains("(InvalidSubnetCidrBlockAssociationID.NotFound)"),
        "{e}"
    );
}

/// A function with `Ipv6AllowedForDualStack` placed in a subnet after
/// AssociateSubnetCidrBlock gave it a block reaches a dual-stack database
/// over IPv6 through the subnet's ENI (made before the block, shared with
/// an IPv4-only function), as if the block had been there from the start.
#[test]
fn a_dual_stack_function_in_a_subnet_given_ipv6_later_reaches_the_database_over_ipv6() {
    let (d, url) = up_from(
        "ec2s6f",
        vpc_tests::fixture!("dual_stack_functions.yaml"),
        &[],
    );
    let vpc = vpc::ec2::ids::derived("vpc", &d.name, &d.name, "Vpc");
    // Lambda names a template's group by its logical id.
    let sg = "FnSg";
    let out = std::process::Command::new(vpc_tests::pyenv_python())
        .arg(vpc_tests::fixture_path("ec2_subnet_ipv6.py"))
        .args([url.as_str(), &vpc, sg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ec2_subnet_ipv6.py: {}",
        vpc_tests::text(&out)
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let block = s(&made["block"]);
    let prefix = block.trim_end_matches("/64").trim_end_matches(':');
    let st = d.status();
    let db6 = s(&st["hosts"][0]["ipv6_address"]);
    let eni6 = st["enis"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ipv6_address"].as_str())
        .find(|a| a.starts_with(prefix))
        .unwrap_or_else(|| panic!("an ENI with an address of {block}: {st}"))
        .to_string();
    let server = vpc_tests::tcp_server(&d.netns("Db"), &format!("[{db6}]:5432"));
    let cmd = format!("echo ping | timeout 30 nc -6 -q1 {db6} 5432");
    let out = d.vpc(&["invoke", "later6", "--", "sh", "-c", &cmd]);
    assert!(out.status.success(), "{}", vpc_tests::text(&out));
    let peer = server.finish(30).expect("the database saw a connection");
    assert_eq!(peer.ip().to_string(), eni6, "through the subnet's ENI");
}
