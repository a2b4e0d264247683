//! tshark as an independent judge of the IKEv2 encoder: the capture written by
//! `examples/ikev2_pcap.rs` must dissect without malformed packets or
//! error-level expert items, and show every payload type and a few of our
//! field values. Skipped (with a message) when tshark is not on PATH.

#[path = "../examples/ikev2_pcap.rs"]
mod ikev2_pcap;

use std::process::Command;

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tshark_dissects_every_payload_cleanly() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("SKIPPED: tshark not on PATH (apt-get install -y tshark to run this check)");
        return;
    }
    let path = std::env::temp_dir().join(format!("palisade-ikev2-{}.pcap", std::process::id()));
    std::fs::write(&path, ikev2_pcap::pcap()).unwrap();
    let p = path.to_str().unwrap();

    let summary = tshark(&["-r", p]);
    assert_eq!(
        summary.lines().count(),
        ikev2_pcap::messages().len(),
        "{summary}"
    );
    let bad = tshark(&[
        "-r",
        p,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= error",
    ]);
    assert!(
        bad.trim().is_empty(),
        "tshark flags:\n{bad}\n{}",
        tshark(&["-r", p, "-q", "-z", "expert"])
    );

    let dissection = tshark(&["-r", p, "-V"]);
    for name in [
        "Security Association (33)",
        "Key Exchange (34)",
        "Identification - Initiator (35)",
        "Identification - Responder (36)",
        "Certificate (37)",
        "Certificate Request (38)",
        "Authentication (39)",
        "Nonce (40)",
        "Notify (41)",
        "Delete (42)",
        "Vendor ID (43)",
        "Traffic Selector - Initiator (44)",
        "Traffic Selector - Responder (45)",
        "Encrypted and Authenticated (46)",
        "Configuration (47)",
        "Extensible Authentication (48)",
        "Encrypted and Authenticated Fragment (53)",
    ] {
        assert!(
            dissection.contains(&format!("Payload: {name}")),
            "payload {name} missing from dissection"
        );
    }

    // tshark reads back the values we wrote.
    let fields = tshark(&[
        "-r",
        p,
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "isakmp.ts.start_ipv4",
        "-e",
        "isakmp.ts.end_ipv6",
        "-e",
        "isakmp.id.data.fqdn",
        "-e",
        "isakmp.delete.spi",
        "-e",
        "isakmp.frag.number",
        "-e",
        "isakmp.frag.total",
    ]);
    let rows: Vec<&str> = fields.lines().collect();
    assert_eq!(
        rows[2],
        "10.1.0.0,10.1.0.0|2001:db8:1:0:ffff:ffff:ffff:ffff,2001:db8:1:0:ffff:ffff:ffff:ffff|gw-a.example|||"
    );
    assert_eq!(rows[6], "|||c001d00d,c001d00e||");
    assert_eq!(rows[8], "||||1|2");
    assert_eq!(rows[9], "||||2|2");
    let _ = std::fs::remove_file(&path);
}
