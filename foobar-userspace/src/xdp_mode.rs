//! How XDP attaches to an interface, as operators name it.

use aya::programs::XdpMode as KernelMode;

/// The attach mode an operator asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver, before any allocation; fails if the driver lacks XDP support.
    Native,
    /// In the kernel's generic path, after the skb is built; works on every interface.
    Generic,
    /// Native where the driver supports it, generic otherwise (logged).
    #[default]
    Auto,
}

/// The kernel modes to try on one interface, in order, and why those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub attempts: &'static [KernelMode],
    pub why: &'static str,
}

impl XdpMode {
    /// The modes to try on an interface whose driver is `driver` (`None`: unknown).
    ///
    /// `auto` takes generic mode on veth: frames that native XDP redirects into a veth reach
    /// its peer only when the peer has NAPI, and packets local senders put on a veth carry
    /// partial checksums that native NAT cannot patch; with the kernel's default offloads (any
    /// container or bridge network) native mode forwards nothing there, and generic mode works.
    pub fn choose(self, driver: Option<&str>) -> Choice {
        match (self, driver) {
            (XdpMode::Native, _) => Choice { attempts: &[KernelMode::Driver], why: "xdp_mode = \"native\"" },
            (XdpMode::Generic, _) => Choice { attempts: &[KernelMode::Skb], why: "xdp_mode = \"generic\"" },
            (XdpMode::Auto, Some("veth")) => Choice {
                attempts: &[KernelMode::Skb],
                why: "auto on veth: native mode would drop redirected frames and partially checksummed packets",
            },
            (XdpMode::Auto, _) => Choice {
                attempts: &[KernelMode::Driver, KernelMode::Skb],
                why: "auto: the driver's own XDP support, else generic",
            },
        }
    }
}

/// Human name of a kernel attach mode, as logs and `status` print it.
pub fn kernel_mode_name(mode: KernelMode) -> &'static str {
    match mode {
        KernelMode::Driver => "native",
        KernelMode::Skb => "generic",
        KernelMode::Hardware => "offload",
        KernelMode::Default => "kernel default",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_generic_on_veth_and_native_first_elsewhere() {
        assert_eq!(XdpMode::Auto.choose(Some("veth")).attempts, [KernelMode::Skb]);
        assert_eq!(XdpMode::Auto.choose(Some("mlx5_core")).attempts, [KernelMode::Driver, KernelMode::Skb]);
        assert_eq!(XdpMode::Auto.choose(None).attempts, [KernelMode::Driver, KernelMode::Skb]);
        assert_eq!(XdpMode::Native.choose(Some("veth")).attempts, [KernelMode::Driver], "asked for is asked for");
    }
}
