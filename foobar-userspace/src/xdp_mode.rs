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

impl XdpMode {
    /// Kernel modes to try, in order.
    pub fn attempts(self) -> &'static [KernelMode] {
        match self {
            XdpMode::Native => &[KernelMode::Driver],
            XdpMode::Generic => &[KernelMode::Skb],
            XdpMode::Auto => &[KernelMode::Driver, KernelMode::Skb],
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
