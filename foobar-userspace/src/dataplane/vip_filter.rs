//! The VIP filter: an array with a nonzero slot for each VIP address (`vip_slot`), which the
//! programs read before their connection-table and service lookups so that traffic to other
//! addresses (DNS queries, the node's own connections) does not pay for those lookups; and
//! one slot more saying whether DNAT bindings may exist, so that replies skip that table too.

use aya::maps::{Array, MapData};
use foobar_common::lb::{DNAT_IN_USE_SLOT, VIP_FILTER_MAP, VIP_FILTER_SLOTS, vip_slot};

use super::{Dataplane, DataplaneError};

/// What this daemon last wrote to the filter, so that a change writes only the slots it
/// changes. Unknown at first: the first sync writes every slot.
#[derive(Clone, Debug, Default)]
pub struct VipFilter {
    written: Option<Vec<u32>>,
}

impl VipFilter {
    /// Makes the filter mark exactly the slots of `vips` (raw address words), and the DNAT
    /// slot when `dnat` (a DNAT service is published or about to be).
    pub fn sync(
        &mut self,
        dp: &mut Dataplane,
        vips: impl Iterator<Item = [u32; 4]>,
        dnat: bool,
    ) -> Result<(), DataplaneError> {
        let mut wanted = vec![0u32; VIP_FILTER_SLOTS as usize + 1];
        for vip in vips {
            wanted[vip_slot(&vip) as usize] = 1;
        }
        // A service that left DNAT mode (or a restart without one) leaves bindings whose
        // flows still need their replies translated: the slot stays set while any is there.
        wanted[DNAT_IN_USE_SLOT as usize] = u32::from(dnat || dp.dnat_bindings_exist()?);
        let mut map: Array<&mut MapData, u32> = Array::try_from(dp.map_mut(VIP_FILTER_MAP)?)?;
        for (slot, &want) in wanted.iter().enumerate() {
            if self.written.as_ref().is_none_or(|w| w[slot] != want) {
                map.set(slot as u32, want, 0)?;
            }
        }
        self.written = Some(wanted);
        Ok(())
    }
}
