//! portalctl as an operator runs it: exit codes, JSON, errors naming files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn portalctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portalctl"))
        .args(args)
        .output()
        .expect("portalctl runs")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portalctl-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn inv(dir: &Path, host: &str, rack: &str, portals: &[(&str, u64)]) {
    let ps: Vec<String> = portals
        .iter()
        .map(|(id, free)| {
            format!(r#"{{"id":"{id}","capacity":1073741824,"free":{free},"members":["{host}"]}}"#)
        })
        .collect();
    fs::write(
        dir.join(format!("{host}.json")),
        format!(
            r#"{{"schema":"cxl_switched.inventory/1","host":"{host}","rack":"{rack}","pod":"p0","portals":[{}]}}"#,
            ps.join(",")
        ),
    )
    .unwrap();
}

/// h0 -A- h1 -B- h2, and h1 -C- h2 as well; racks r0 (h0, h1) and r1 (h2).
fn small_fabric(name: &str) -> PathBuf {
    let d = tmpdir(name);
    inv(&d, "h0", "r0", &[("A", 100)]);
    inv(&d, "h1", "r0", &[("A", 100), ("B", 300), ("C", 200)]);
    inv(&d, "h2", "r1", &[("B", 300), ("C", 200)]);
    d
}

#[test]
fn fabric_from_a_directory_of_inventories() {
    let d = small_fabric("dir");
    let v = json(&portalctl(&["fabric", "--json", d.to_str().unwrap()]));
    assert_eq!(v["hosts"], 3);
    assert_eq!(v["portals"], 3);
    assert_eq!(v["attachments"], 6);
    assert_eq!(v["reach"].as_array().unwrap().len(), 1);
    // A joins h0 to the rest; B and C back each other up.
    let crit = v["critical_connections"].as_array().unwrap();
    let portals: Vec<&str> = crit
        .iter()
        .filter(|c| c["kind"] == "portal")
        .map(|c| c["portal"].as_str().unwrap())
        .collect();
    assert_eq!(portals, ["A"]);
    assert_eq!(v["critical_hosts"], serde_json::json!(["h1"]));
    assert!(
        crit.iter().all(|c| c["cross_rack"] == false),
        "A stays in rack r0"
    );
}

#[test]
fn routes_prefer_wider_and_honour_avoid() {
    let d = small_fabric("route");
    let v = json(&portalctl(&[
        "fabric",
        "--json",
        d.to_str().unwrap(),
        "--route",
        "h0",
        "h2",
        "--alternatives",
        "3",
    ]));
    let routes = v["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(
        routes[0]["path"],
        serde_json::json!(["h0", "A", "h1", "B", "h2"])
    );
    assert_eq!(routes[0]["width"], 100);
    assert_eq!(
        routes[1]["path"],
        serde_json::json!(["h0", "A", "h1", "C", "h2"])
    );

    let v = json(&portalctl(&[
        "fabric",
        "--json",
        d.to_str().unwrap(),
        "--route",
        "h1",
        "h2",
        "--avoid",
        "B",
    ]));
    assert_eq!(v["routes"][0]["path"], serde_json::json!(["h1", "C", "h2"]));

    let out = portalctl(&[
        "fabric",
        d.to_str().unwrap(),
        "--route",
        "h0",
        "h2",
        "--avoid",
        "A",
    ]);
    assert_eq!(out.status.code(), Some(3), "no route is exit status 3");
    let out = portalctl(&["fabric", d.to_str().unwrap(), "--route", "h0", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no host 'nosuch'"));
}

#[test]
fn cross_rack_critical_connections_are_labelled() {
    let d = tmpdir("racks");
    inv(&d, "a0", "r0", &[("in0", 1)]);
    inv(&d, "a1", "r0", &[("in0", 1), ("link", 1)]);
    inv(&d, "b0", "r1", &[("link", 1)]);
    let v = json(&portalctl(&["fabric", "--json", d.to_str().unwrap()]));
    let link = v["critical_connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "portal" && c["portal"] == "link")
        .expect("link is critical")
        .clone();
    assert_eq!(link["cross_rack"], true);
    assert_eq!(link["cross_pod"], false);
    let text = String::from_utf8(portalctl(&["fabric", d.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("portal link  [cross-rack]"), "{text}");
}

#[test]
fn bad_inputs_name_the_file() {
    let d = tmpdir("bad");
    fs::write(
        d.join("broken.json"),
        "{\n  \"schema\": \"cxl_switched.inventory/1\",\n  \"host\": 7\n}\n",
    )
    .unwrap();
    let out = portalctl(&["fabric", d.join("broken.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.json"), "{err}");

    fs::write(
        d.join("future.json"),
        r#"{"schema":"cxl_switched.inventory/2","host":"x","portals":[]}"#,
    )
    .unwrap();
    let out = portalctl(&["fabric", d.join("future.json").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("future.json") && err.contains("inventory/2"),
        "{err}"
    );

    let out = portalctl(&["fabric", "/nonexistent/inv.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/inv.json"));
}

#[test]
fn generated_chain_is_all_critical() {
    let d = tmpdir("gen");
    let f = d.join("chain.json");
    let out = portalctl(&[
        "generate",
        "--shape",
        "chain",
        "--hosts",
        "5",
        "-o",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let v = json(&portalctl(&["fabric", "--json", f.to_str().unwrap()]));
    assert_eq!(v["hosts"], 5);
    let crit = v["critical_connections"].as_array().unwrap();
    assert_eq!(crit.iter().filter(|c| c["kind"] == "portal").count(), 4);
    assert_eq!(crit.iter().filter(|c| c["kind"] == "attachment").count(), 8);
    assert_eq!(v["critical_hosts"], serde_json::json!(["h1", "h2", "h3"]));
}

#[test]
fn dot_marks_critical_parts_and_the_route() {
    let d = small_fabric("dot");
    let out = portalctl(&[
        "fabric",
        d.to_str().unwrap(),
        "--dot",
        "--route",
        "h0",
        "h2",
    ]);
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("graph fabric {"));
    // Portal A (p0) is critical: red; host h1 (h1) is critical: red.
    assert!(
        dot.lines()
            .any(|l| l.trim_start().starts_with("p0 [") && l.contains("color=red")),
        "{dot}"
    );
    assert!(
        dot.lines()
            .any(|l| l.trim_start().starts_with("h1 [") && l.contains("color=red")),
        "{dot}"
    );
    // The route h0 A h1 B h2 is drawn blue: 4 edges.
    assert_eq!(
        dot.lines().filter(|l| l.contains("color=blue")).count(),
        4,
        "{dot}"
    );
    assert!(dot.contains("subgraph cluster_"), "racks are clusters");
}

#[test]
fn svg_when_graphviz_is_there() {
    if Command::new("dot").arg("-V").output().is_err() {
        eprintln!("graphviz not installed: skipping");
        return;
    }
    let d = small_fabric("svg");
    let svg = d.join("fabric.svg");
    let out = portalctl(&[
        "fabric",
        d.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn list_reads_a_captured_pagetypeinfo() {
    let d = tmpdir("list");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lab-7.3-upstream.pagetypeinfo"
    );
    let v = json(&portalctl(&[
        "list",
        "--json",
        "--pagetypeinfo",
        fixture,
        "--root",
        d.to_str().unwrap(),
    ]));
    let nodes: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_u64().unwrap())
        .collect();
    assert_eq!(nodes, [0, 2]);
    assert_eq!(v[1]["free"], 256u64 << 20);
    assert_eq!(v[1]["portal"], false);

    let bad = d.join("pti");
    fs::write(
        &bad,
        "Page block order: 9\nNode    0, zone DMA, type Movable 1 x\n",
    )
    .unwrap();
    let out = portalctl(&["list", "--pagetypeinfo", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains(bad.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn help_lists_every_command_and_exit_codes() {
    let out = portalctl(&["--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for c in ["list", "inventory", "fabric", "generate", "bench"] {
        assert!(text.contains(c), "--help lacks {c}");
    }
    assert!(text.contains("Exit status"));
    assert_eq!(portalctl(&["frobnicate"]).status.code(), Some(2));
}

// ---- portalctl portal show|check ----

const BLOCK: u64 = 128 << 20;

/// A sparse portal image of `size` bytes starting with `start`.
fn portal_image(dir: &Path, name: &str, start: &[u8], size: u64) -> PathBuf {
    use std::io::Write;
    let p = dir.join(name);
    let mut f = fs::File::create(&p).unwrap();
    f.write_all(start).unwrap();
    f.set_len(size).unwrap();
    p
}

#[test]
fn portal_show_and_check_say_what_a_booting_host_does() {
    let d = tmpdir("portal");
    let size = 4 * BLOCK;
    let rec = cxlsw_handoff::header::format_record([0x11; 16], BLOCK, size, 64);
    let empty = portal_image(&d, "empty.img", &[], size);
    let good = portal_image(&d, "good.img", &rec, size);
    let mut torn_rec = rec.clone();
    torn_rec[0x30] ^= 1;
    let torn = portal_image(&d, "torn.img", &torn_rec, size);
    let foreign = portal_image(&d, "foreign.img", b"ext4 or whatever", size);
    let block = BLOCK.to_string();

    let v = json(&portalctl(&[
        "portal",
        "check",
        empty.to_str().unwrap(),
        "--block-size",
        &block,
        "--json",
    ]));
    assert_eq!(v["state"], "empty");

    let v = json(&portalctl(&[
        "portal",
        "show",
        good.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["state"], "formatted");
    assert_eq!(v["superblock"]["version"], "2.3");
    assert_eq!(v["superblock"]["block_count"], 4);
    assert_eq!(v["superblock"]["host_slots"], 64);
    assert_eq!(
        v["superblock"]["uuid"],
        "11111111-1111-1111-1111-111111111111"
    );
    let v = json(&portalctl(&[
        "portal",
        "check",
        good.to_str().unwrap(),
        "--block-size",
        &block,
        "--json",
    ]));
    assert_eq!(v["state"], "formatted");

    // The same header on a device of another size is not this device's.
    let out = portalctl(&[
        "portal",
        "check",
        good.to_str().unwrap(),
        "--block-size",
        &block,
        "--size",
        &(8 * BLOCK).to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("block count differs"));

    for (img, why) in [(&torn, "checksum mismatch"), (&foreign, "unknown magic")] {
        let out = portalctl(&[
            "portal",
            "check",
            img.to_str().unwrap(),
            "--block-size",
            &block,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", img.display());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("refused") && text.contains(why), "{text}");
        assert!(
            text.contains(img.to_str().unwrap()),
            "names the file: {text}"
        );
    }

    let out = portalctl(&["portal", "show", d.join("missing.img").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.img"));
}

/// A fake sysfs with one bound portal whose `suspects` holds `text`.
fn fake_portal(name: &str, text: &str) -> PathBuf {
    let root = tmpdir(name);
    let d = root.join("sys/bus/dax/devices/dax0.0/cxl_switched");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("suspects"), text).unwrap();
    fs::write(d.join("fence_confirm"), "").unwrap();
    root
}

const SUSPECT: &str = "3 5b0c0d4e-8f4a-4c1b-9d2e-3f6a7b8c9d0e epoch 1 silent 12040 unconfirmed\n";

#[test]
fn suspects_lists_what_the_driver_reports() {
    let root = fake_portal("suspects", SUSPECT);
    let r = root.to_str().unwrap();
    let v = json(&portalctl(&[
        "--json", "portal", "suspects", "dax0.0", "--root", r,
    ]));
    assert_eq!(v[0]["slot"], 3);
    assert_eq!(v[0]["uuid"], "5b0c0d4e-8f4a-4c1b-9d2e-3f6a7b8c9d0e");
    assert_eq!(v[0]["confirmed"], false);
    let out = portalctl(&["portal", "suspects", "dax0.0", "--root", r]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("suspect: fence it, then confirm"));
}

#[test]
fn fence_confirm_writes_slot_and_uuid() {
    let root = fake_portal("confirm", SUSPECT);
    let r = root.to_str().unwrap();
    let out = portalctl(&[
        "portal",
        "fence-confirm",
        "dax0.0",
        "--slot",
        "3",
        "--root",
        r,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written =
        fs::read_to_string(root.join("sys/bus/dax/devices/dax0.0/cxl_switched/fence_confirm"))
            .unwrap();
    assert_eq!(written, "3 5b0c0d4e-8f4a-4c1b-9d2e-3f6a7b8c9d0e\n");
}

#[test]
fn fence_confirm_refuses_another_host_or_a_live_slot() {
    let root = fake_portal("refuse", SUSPECT);
    let r = root.to_str().unwrap();
    let file = root.join("sys/bus/dax/devices/dax0.0/cxl_switched/fence_confirm");
    let out = portalctl(&[
        "portal",
        "fence-confirm",
        "dax0.0",
        "--slot",
        "3",
        "--uuid",
        "00000000-0000-0000-0000-000000000000",
        "--root",
        r,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not confirmed"));
    let out = portalctl(&[
        "portal",
        "fence-confirm",
        "dax0.0",
        "--slot",
        "4",
        "--root",
        r,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("slot 4 is no suspect"));
    assert_eq!(fs::read_to_string(&file).unwrap(), "", "nothing written");
    let out = portalctl(&["portal", "suspects", "dax9.9", "--root", r]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dax9.9/cxl_switched/suspects"));
}

// ---- portalctl handoff list|export|cancel|accept|pull|release ----

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn handoff_without_the_device_says_the_module_is_not_loaded() {
    let out = portalctl(&["handoff", "list", "--device", "/nonexistent/cxl_switched"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("portalctl: /nonexistent/cxl_switched: OPEN: "),
        "{err}"
    );
    assert!(
        err.contains("the cxl_switched module is not loaded or the device node is missing"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// /dev/null takes no ioctl: each request reaches the kernel and its errno
/// comes back, named with the device and the request.
#[test]
fn handoff_requests_the_kernel_refuses_are_exit_status_1() {
    let out = portalctl(&["handoff", "list", "--json", "--device", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("portalctl: /dev/null: LIST: Inappropriate ioctl for device (os error 25)"),
        "{err}"
    );

    let out = portalctl(&[
        "handoff",
        "cancel",
        "--node",
        "2",
        "--index",
        "3",
        "--id",
        "0x2a",
        "--device",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/dev/null: CANCEL: "),
        "{}",
        stderr(&out)
    );

    // The ranges by default from /proc/PID/maps (of this test, which has some).
    let me = std::process::id().to_string();
    let out = portalctl(&[
        "handoff",
        "export",
        "--pid",
        &me,
        "--node",
        "2",
        "--to",
        "1",
        "--device",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/dev/null: EXPORT: "),
        "{}",
        stderr(&out)
    );

    let out = portalctl(&[
        "handoff",
        "export",
        "--pid",
        "1",
        "--node",
        "2",
        "--to",
        "1",
        "--range",
        "0x7f0000000000:2M",
        "--range",
        "0x7f0000400000:4096",
        "--device",
        "/dev/null",
    ]);
    assert!(
        stderr(&out).contains("/dev/null: EXPORT: "),
        "{}",
        stderr(&out)
    );
}

/// The target's requests and the source's RELEASE, refused: exit status 1,
/// the device, the request and its errno, and no result printed.
#[test]
fn handoff_accept_pull_release_name_the_request_the_kernel_refuses() {
    let id = ["--node", "2", "--index", "3", "--id", "0x2a"];
    let dev = ["--device", "/dev/null"];
    for (cmd, extra, request) in [
        ("accept", &[][..], "ACCEPT"),
        ("pull", &["--to-node", "0"][..], "PULL"),
        ("pull", &["--to-node", "0", "--batch", "1"][..], "PULL"),
        ("release", &[][..], "RELEASE"),
    ] {
        for json in [false, true] {
            let mut args = vec!["handoff", cmd];
            args.extend(id);
            args.extend(extra);
            args.extend(dev);
            if json {
                args.push("--json");
            }
            let out = portalctl(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = stderr(&out);
            assert!(
                err.starts_with(&format!(
                    "portalctl: /dev/null: {request}: Inappropriate ioctl for device (os error 25)"
                )),
                "{args:?}: {err}"
            );
            assert!(out.stdout.is_empty(), "{args:?}");
        }
    }
    let out = portalctl(&[
        "handoff",
        "accept",
        "--node",
        "2",
        "--index",
        "3",
        "--id",
        "42",
        "--device",
        "/nonexistent/cxl_switched",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("portalctl: /nonexistent/cxl_switched: OPEN: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn handoff_export_names_what_it_cannot_read() {
    let out = portalctl(&[
        "handoff",
        "export",
        "--pid",
        "2147483647",
        "--node",
        "2",
        "--to",
        "1",
        "--device",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/proc/2147483647/maps"),
        "{}",
        stderr(&out)
    );

    let me = std::process::id().to_string();
    let out = portalctl(&[
        "handoff",
        "export",
        "--pid",
        &me,
        "--node",
        "2",
        "--to",
        "1",
        "--range",
        "0:4096",
        "--blob",
        "/nonexistent/blob",
        "--device",
        "/dev/null",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/blob"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn handoff_usage_errors_are_exit_status_2() {
    for args in [
        &[
            "handoff", "export", "--pid", "1", "--node", "2", "--to", "1", "--range", "0x1000",
        ][..],
        &[
            "handoff", "export", "--pid", "1", "--node", "2", "--to", "1", "--range", "0:1T",
        ],
        &["handoff", "export", "--node", "2", "--to", "1"],
        &[
            "handoff", "cancel", "--node", "2", "--index", "3", "--id", "0xzz",
        ],
        &["handoff", "accept", "--node", "2", "--index", "3"],
        &["handoff", "release", "--node", "2", "--id", "1"],
        &[
            "handoff", "pull", "--node", "2", "--index", "3", "--id", "1",
        ],
        &[
            "handoff",
            "pull",
            "--node",
            "2",
            "--index",
            "3",
            "--id",
            "1",
            "--to-node",
            "0",
            "--batch",
            "0",
        ],
        &[
            "handoff",
            "pull",
            "--node",
            "2",
            "--index",
            "3",
            "--id",
            "1",
            "--to-node",
            "0",
            "--batch",
            "1048577",
        ],
        &["handoff", "frobnicate"],
    ] {
        let out = portalctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = portalctl(&["handoff", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for c in ["list", "export", "cancel", "accept", "pull", "release"] {
        assert!(text.contains(c), "handoff --help lacks {c}");
    }
    let out = portalctl(&["handoff", "pull", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for w in [
        "--node <NID>",
        "--index <INDEX>",
        "--id <ID>",
        "--to-node <NID>",
        "--batch <PAGES>",
        "[default: 4096]",
        "pulled <done>/<total> pages, <secs> s left",
        "pulled <total> pages in <ms> ms",
    ] {
        assert!(text.contains(w), "handoff pull --help lacks {w}:\n{text}");
    }
    let out = portalctl(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("handoff"));
}
