//! The object's map list against `vpc_common::map_names`.
use std::collections::BTreeSet;

use aya_obj::EbpfSectionKind;
use vpc_common::map_names;

use super::EBPF_OBJECT;

/// `map_names` and the built object's maps are the same set: a map
/// renamed on either side fails here, not at load time. Parsing needs
/// neither root nor a kernel.
#[test]
fn map_names_match_the_object() {
    let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("parsing the eBPF object");
    // `.data`, `.rodata` and `.bss` also parse as maps: globals, not `#[map]`s.
    let in_object: BTreeSet<&str> = obj
        .maps
        .iter()
        .filter(|(_, m)| {
            matches!(
                m.section_kind(),
                EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps
            )
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let names: BTreeSet<&str> = map_names::ALL.iter().copied().collect();
    assert_eq!(
        names.len(),
        map_names::ALL.len(),
        "a name twice in map_names::ALL"
    );
    assert_eq!(names, in_object);
}
