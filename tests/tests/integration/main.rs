//! foobar's integration tests, all in one binary.
//!
//! Each module contributes its trials. Tests that need root or the eBPF object say so
//! through [`gated`]: they are reported as ignored, with the reason, when run where they
//! cannot work, and fail instead under CI or `cargo xtask test`.

mod addresses_lab;
mod cluster_lab;
mod cluster_nat_lab;
mod daemon_lab;
mod db_lab;
mod dns_lab;
mod e2e_lab;
mod failover_lab;
mod firewall;
mod firewall_lab;
mod fixtures;
mod flood_lab;
mod health_lab;
mod instance_lab;
mod kernel_log;
mod lb_fixtures;
mod lb_lab;
mod monitoring_lab;
mod netns_xdp;
mod package_lab;
mod pair_lab;
mod parser_props;
mod pins;
mod reload_lab;
mod replication_lab;
mod stack;
mod state_lab;

use foobar_tests::gate::{self, Gate, Need};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// A test that runs only when `needs` are met; the body panics on failure. It runs beside
/// others, but never beside a [`gated_alone`] one.
pub fn gated(name: &str, needs: &'static [Need], body: fn()) -> Trial {
    Trial::ignorable_test(name, move || {
        let _beside = TIMERS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        run_gated(needs, body)
    })
}

/// Labs whose checks hang on sub-second timers (BFD, VRRP) run with no other lab at all: on
/// two cores another lab's daemons loading their programs starve them, and a drill that
/// passes alone fails beside it.
static TIMERS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// [`gated`], while no other gated test runs.
pub fn gated_alone(name: &str, needs: &'static [Need], body: fn()) -> Trial {
    Trial::ignorable_test(name, move || {
        let _alone = TIMERS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        run_gated(needs, body)
    })
}

fn run_gated(needs: &'static [Need], body: fn()) -> Result<Completion, Failed> {
    match gate::check(needs) {
        Gate::Run => {
            body();
            Ok(Completion::Completed)
        }
        Gate::Skip(why) => Ok(Completion::ignored_with(why)),
        Gate::Fail(why) => Err(Failed::from(why)),
    }
}

/// A test with no prerequisites.
pub fn plain(name: &str, body: fn()) -> Trial {
    Trial::test(name, move || {
        body();
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(parser_props::trials());
    trials.extend(fixtures::trials());
    trials.extend(firewall::trials());
    trials.extend(firewall_lab::trials());
    trials.extend(flood_lab::trials());
    trials.extend(lb_fixtures::trials());
    trials.extend(lb_lab::trials());
    trials.extend(daemon_lab::trials());
    trials.extend(monitoring_lab::trials());
    trials.extend(cluster_lab::trials());
    trials.extend(cluster_nat_lab::trials());
    trials.extend(pair_lab::trials());
    trials.extend(dns_lab::trials());
    trials.extend(health_lab::trials());
    trials.extend(instance_lab::trials());
    trials.extend(db_lab::trials());
    trials.extend(e2e_lab::trials());
    trials.extend(reload_lab::trials());
    trials.extend(replication_lab::trials());
    trials.extend(failover_lab::trials());
    trials.extend(kernel_log::trials());
    trials.extend(netns_xdp::trials());
    trials.extend(package_lab::trials());
    trials.extend(pins::trials());
    trials.extend(stack::trials());
    trials.extend(state_lab::trials());
    trials.extend(addresses_lab::trials());
    libtest_mimic::run(&args, trials).exit();
}
