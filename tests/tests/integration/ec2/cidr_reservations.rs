//! Subnet CIDR reservations of the EC2 API: made, listed and deleted with
//! the AWS CLI, refused as EC2 refuses them, and honoured by automatic
//! address assignment: an interface made without an address in a subnet
//! whose next free addresses are reserved gets one past them, and the
//! template's database reaches it there.
use vpc_tests::{connects, peer_server};

use super::{aws, ok, s, up};

#[test]
fn reserved_addresses_are_skipped_and_the_interface_past_them_is_reached() {
    let (d, url) = up("ec2scr");
    let vpc = vpc::ec2::ids::derived("vpc", &d.name, &d.name, "Vpc");
    let subnet = vpc::ec2::ids::derived("subnet", &d.name, &d.name, "DbSubnet");
    let db_sg = vpc::ec2::ids::derived("sg", &d.name, &d.name, "DbSg");

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
    let sg = s(&ok(
        &url,
        &[
            "create-security-group",
            "--group-name",
            "appliance",
            "--description",
            "d",
            "--vpc-id",
            &vpc,
        ],
    )["GroupId"]);
    ok(
        &url,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "7200",
            "--source-group",
            &db_sg,
        ],
    );
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
