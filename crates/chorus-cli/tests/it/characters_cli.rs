//! `chorus characters …` on the card fixtures of `chorus-engine/tests/data/characters`, in a
//! characters directory of the test's own (no server): `import` of a JSON and a PNG card,
//! `list`, `show` (by id and by name), `export` as JSON (the imported JSON back) and as PNG
//! (which imports again to the same JSON), `validate` of good and bad cards (the field at
//! fault named, exit 1), and the refusals that say what to do next.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::bin;
use crate::cli::text;

/// The card fixtures.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../chorus-engine/tests/data/characters").join(name)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// Run `chorus characters ARGS` on the characters directory `dir`, with none of the user's
/// chorus environment.
fn characters(dir: &Path, args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(bin())
        .arg("characters")
        .args(args)
        .arg("--characters-dir")
        .arg(dir)
        .env("XDG_DATA_HOME", data.path())
        .env_remove("CHORUS_DATA_DIR")
        .env_remove("CHORUS_CHARACTERS_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run chorus")
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stderr)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn import_list_show_and_export_cards() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("characters");
    let aria_json = fixture("aria.v3.json");
    let bram_png = fixture("bram.v2.png");

    let out = characters(&dir, &["list"]);
    assert_eq!(ok(&out), "", "no characters yet");
    assert!(text(&out.stderr).contains("chorus characters import"), "{}", text(&out.stderr));

    assert_eq!(ok(&characters(&dir, &["import", path(&aria_json)])), "aria\n");
    assert_eq!(ok(&characters(&dir, &["import", path(&bram_png)])), "bram\n");
    assert!(dir.join("aria.json").is_file() && dir.join("bram.json").is_file() && dir.join("bram.png").is_file());

    let list = ok(&characters(&dir, &["list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "NAME", "SPEC", "TAGS"]);
    assert!(lines[1].starts_with("aria ") && lines[1].contains("Aria") && lines[1].contains("chara_card_v3"), "{list}");
    assert!(lines[1].ends_with("lighthouse, cozy, coastal, female"), "{list}");
    assert!(lines[2].starts_with("bram ") && lines[2].contains("chara_card_v2"), "{list}");

    let json: Value = serde_json::from_str(&ok(&characters(&dir, &["list", "--json"]))).unwrap();
    assert_eq!(json[0]["id"], "aria");
    assert_eq!(json[0]["vitals"], 3);
    assert_eq!(json[0]["has_lorebook"], true);
    assert_eq!(json[1]["name"], "Bram");

    let show = ok(&characters(&dir, &["show", "aria"]));
    for expected in [
        "name       Aria",
        "spec       chara_card_v3 3.0",
        "lorebook   5 entries (5 enabled)",
        "mood (one of cheerful|calm|worried|annoyed, default cheerful; character)",
        "trust (number 0..100, default 50; per user)",
        "energy (number 0..100, default 80, decays 1/turn; character)",
        "greetings  first message + 2 alternate",
        "description:\n  {{char}} is the keeper of the Greywater lighthouse",
    ] {
        assert!(show.contains(expected), "`{expected}` in:\n{show}");
    }
    let show = ok(&characters(&dir, &["show", "BRAM"]));
    assert!(show.contains("id         bram") && show.contains("imported from bram.png"), "by name:\n{show}");
    assert!(show.contains("vitals     none"), "{show}");

    let shown: Value = serde_json::from_str(&ok(&characters(&dir, &["show", "aria", "--json"]))).unwrap();
    assert_eq!(shown, fixture_json("aria.v3.json"));

    // JSON export: the imported JSON, unknown keys and all.
    let exported: Value = serde_json::from_str(&ok(&characters(&dir, &["export", "aria"]))).unwrap();
    assert_eq!(exported, fixture_json("aria.v3.json"));
    assert_eq!(exported["data"]["extensions"]["some_frontend"]["x"], 1);

    // PNG export, imported into another directory: the same JSON.
    let png = tmp.path().join("bram-out.png");
    let out = characters(&dir, &["export", "Bram", "--format", "png", "-o", path(&png)]);
    ok(&out);
    assert!(text(&out.stderr).contains("wrote `bram` as png"), "{}", text(&out.stderr));
    let png_aria = tmp.path().join("aria-out.png");
    ok(&characters(&dir, &["export", "aria", "--format", "png", "--output", path(&png_aria)]));
    let charx = tmp.path().join("aria-out.charx");
    ok(&characters(&dir, &["export", "aria", "--format", "charx", "-o", path(&charx)]));
    let other = tmp.path().join("other");
    assert_eq!(ok(&characters(&other, &["import", path(&png)])), "bram\n");
    assert_eq!(ok(&characters(&other, &["import", path(&png_aria)])), "aria\n");
    assert_eq!(ok(&characters(&other, &["import", path(&charx), "--id", "aria-charx"])), "aria-charx\n");
    let bram: Value = serde_json::from_str(&ok(&characters(&other, &["export", "bram"]))).unwrap();
    assert_eq!(bram, fixture_json("bram.v2.json"));
    for id in ["aria", "aria-charx"] {
        let aria: Value = serde_json::from_str(&ok(&characters(&other, &["export", id]))).unwrap();
        assert_eq!(aria, fixture_json("aria.v3.json"), "{id}");
    }
    // The PNG fixture holds the same card as the JSON one.
    let bram: Value = serde_json::from_str(&ok(&characters(&dir, &["show", "bram", "--json"]))).unwrap();
    assert_eq!(bram, fixture_json("bram.v2.json"));

    // Ids: made unique, or refused when given and taken.
    assert_eq!(ok(&characters(&dir, &["import", path(&aria_json)])), "aria-2\n");
    let stderr = failed(&characters(&dir, &["import", path(&aria_json), "--id", "aria"]));
    assert!(stderr.contains("exists already") && stderr.contains("--replace"), "{stderr}");
    assert_eq!(ok(&characters(&dir, &["import", path(&aria_json), "--id", "aria", "--replace"])), "aria\n");
    let stderr = failed(&characters(&dir, &["import", path(&aria_json), "--id", "Not An Id"]));
    assert!(stderr.contains("id: ") && stderr.contains("lowercase"), "{stderr}");

    // Refusals that say what to do.
    let stderr = failed(&characters(&dir, &["export", "aria", "--format", "png"]));
    assert!(stderr.contains("-o FILE"), "{stderr}");
    let stderr = failed(&characters(&dir, &["show", "nobody"]));
    assert!(stderr.contains("no character `nobody`") && stderr.contains("chorus characters list"), "{stderr}");
    let bad = fixture("bad/missing-name.json");
    let stderr = failed(&characters(&dir, &["import", path(&bad)]));
    assert!(stderr.contains("missing-name.json: data.name: must not be blank"), "{stderr}");
}

#[test]
fn validate_names_the_field_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = [fixture("aria.v3.json"), fixture("aria.v3.png"), fixture("bram.v2.json"), fixture("bram.v2.png")];
    let args: Vec<&str> = std::iter::once("validate").chain(good.iter().map(|p| path(p))).collect();
    let stdout = ok(&characters(dir, &args));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("ok {} (chara_card_v3 \"Aria\")", path(&good[0])),
            format!("ok {} (chara_card_v3 \"Aria\")", path(&good[1])),
            format!("ok {} (chara_card_v2 \"Bram\")", path(&good[2])),
            format!("ok {} (chara_card_v2 \"Bram\")", path(&good[3])),
        ]
    );

    for (file, expected) in [
        ("bad/missing-name.json", "data.name: must not be blank"),
        ("bad/entry-keys-not-array.json", "data.character_book.entries[2].keys: expected an array of strings"),
        ("bad/vitals-bounds.json", "data.extensions.chorus.vitals[0].default: 150 is outside [0, 100]"),
    ] {
        let bad = fixture(file);
        let stderr = failed(&characters(dir, &["validate", path(&bad)]));
        assert!(stderr.contains(&format!("{}: {expected}", path(&bad))), "{file}: {stderr}");
    }

    // Good and bad together: an `ok` line for the good one, exit 1, the count.
    let (bad, good) = (fixture("bad/vitals-bounds.json"), fixture("bram.v2.json"));
    let out = characters(dir, &["validate", path(&good), path(&bad)]);
    let stderr = failed(&out);
    assert!(text(&out.stdout).starts_with("ok "), "{}", text(&out.stdout));
    assert!(stderr.contains("1 of 2 cards are invalid"), "{stderr}");

    let junk = dir.join("junk.json");
    std::fs::write(&junk, "hello").unwrap();
    let stderr = failed(&characters(dir, &["validate", path(&junk), path(&dir.join("absent.json"))]));
    assert!(stderr.contains("not a character card"), "{stderr}");
    assert!(stderr.contains("absent.json: cannot read it"), "{stderr}");
}

#[test]
fn the_default_characters_dir_is_in_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("characters")
            .args(args)
            .env("CHORUS_DATA_DIR", data.path())
            .env_remove("CHORUS_CHARACTERS_DIR")
            .output()
            .expect("run chorus")
    };
    let aria = fixture("aria.v3.json");
    assert_eq!(ok(&run(&["import", path(&aria)])), "aria\n");
    assert!(data.path().join("characters/aria.json").is_file());
    assert!(ok(&run(&["list"])).contains("Aria"));
}
