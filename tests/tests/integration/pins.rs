//! Pinned state this build would misread is refused, never adopted: maps of another shape,
//! another capacity, or another layout version.

use foobar::dataplane::{Capacity, Dataplane, DataplaneError, pins::Pins};
use foobar_common::{LAYOUT_MAP, lb::CONNTRACK_MAP};
use foobar_tests::gate::Need;
use libtest_mimic::Trial;

use crate::gated;

pub fn trials() -> Vec<Trial> {
    vec![gated("pins::pins_of_another_layout_or_capacity_are_refused", &[Need::Root, Need::Bpf], refused)]
}

fn refused() {
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/foobar-test-layout-{}", std::process::id()));
    let pins = Pins::prepare(&dir).expect("a pin directory on bpffs");
    let outcome = std::panic::catch_unwind(|| {
        let small = Capacity { flows: 4096, nat_bindings: 4096, ..Capacity::default() };
        drop(Dataplane::load_pinned(pins.clone(), &small).expect("the first load pins its maps"));
        drop(Dataplane::load_pinned(pins.clone(), &small).expect("the same build and capacity adopt them"));

        let bigger = Capacity { flows: 8192, ..small };
        let err = Dataplane::load_pinned(pins.clone(), &bigger).err().expect("another capacity.flows");
        assert!(matches!(err, DataplaneError::PinnedCapacity { map: CONNTRACK_MAP, pinned: 4096, wanted: 8192, .. }));
        let said = err.to_string();
        assert!(
            said.contains("capacity.flows asks for 8192: set capacity.flows back to 4096")
                && said.contains("foobar cleanup"),
            "{said}"
        );

        // A map of another shape where the connection table should be (an older build's).
        let table = pins.map(CONNTRACK_MAP);
        std::fs::remove_file(&table).expect("unpin the table");
        crate::firewall::pin_counter_array(&table, 4096);
        let err = Dataplane::load_pinned(pins.clone(), &small).err().expect("a connection table of another shape");
        let said = err.to_string();
        assert!(matches!(err, DataplaneError::PinnedLayout { map: CONNTRACK_MAP, .. }), "{said}");
        assert!(
            said.contains("was made by a foobar with another map layout") && said.contains("nothing was adopted"),
            "{said}"
        );
        std::fs::remove_file(&table).expect("unpin the stand-in");

        // Same shapes, another layout version.
        drop(Dataplane::load_pinned(pins.clone(), &small).expect("a fresh table is made"));
        set_layout_version(&pins, 99);
        let err = Dataplane::load_pinned(pins.clone(), &small).err().expect("another layout version");
        assert!(matches!(err, DataplaneError::PinnedVersion { pinned: 99, .. }), "{err}");
    });
    Pins::remove_all(&dir).expect("remove the test pins");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn set_layout_version(pins: &Pins, version: u64) {
    let data = aya::maps::MapData::from_pin(pins.map(LAYOUT_MAP)).expect("layout pin");
    let mut map = aya::maps::Map::Array(data);
    let mut array: aya::maps::Array<&mut aya::maps::MapData, u64> =
        aya::maps::Array::try_from(&mut map).expect("array");
    array.set(0, version, 0).expect("set version");
}
