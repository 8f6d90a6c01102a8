//! Moving the primary: the planned switchover and the unplanned failover, step by step, each
//! step logged and bounded, a failed switchover rolled back to where it started.

use std::time::Duration;

use tracing::{info, warn};

use super::{
    Server,
    admin::{Admin, ReplicationLogin, StepFailed},
    gtid::Position,
    observe::Login,
};

/// What every step needs: how to log in, how long a statement and a catch-up may take.
pub struct Steps<'a> {
    pub login: Login<'a>,
    pub replication: &'a ReplicationLogin,
    pub timeout: Duration,
    /// How long a replica may take to apply what it must before it is promoted.
    pub catch_up: Duration,
}

impl Steps<'_> {
    async fn admin<'s>(&self, server: &'s Server) -> Result<Admin<'s>, StepFailed> {
        Admin::connect(server, &self.login, self.timeout).await
    }

    /// Planned: `from` read-only, `to` applies everything `from` wrote, `to` writable, `from`
    /// and `others` replicate from `to`. Nothing committed on `from` is lost: it takes no
    /// write once read-only, and `to` is writable only after applying its last transaction.
    /// Returns the position where `to`'s history as primary begins.
    pub async fn switchover(&self, from: &Server, to: &Server, others: &[&Server]) -> Result<Position, StepFailed> {
        let mut a = self.admin(from).await?;
        let mut b = self.admin(to).await?;
        a.set_read_only(true).await?;
        info!(server = from.name, step = "read_only", "switchover: the primary takes no more writes");
        let at = match a.binlog_position().await {
            Ok(at) => at,
            Err(e) => return Err(undo_read_only(&mut a, e).await),
        };
        if let Err(e) = b.wait_applied(&at, self.catch_up).await {
            return Err(undo_read_only(&mut a, e).await);
        }
        info!(server = to.name, step = "caught_up", position = %at, "switchover: the new primary has every transaction");
        if let Err(e) = self.make_primary(&mut b).await {
            let _ = b.replicate_from(from, self.replication, "slave_pos", self.login.tls.is_some()).await;
            return Err(undo_read_only(&mut a, e).await);
        }
        if let Err(e) = a.replicate_from(to, self.replication, "current_pos", self.login.tls.is_some()).await {
            // Back as it was: `to` a read-only replica of `from`, `from` writable.
            let _ = b.set_read_only(true).await;
            let _ = b.replicate_from(from, self.replication, "slave_pos", self.login.tls.is_some()).await;
            let _ = a.stop_replicating().await;
            return Err(undo_read_only(&mut a, e).await);
        }
        info!(
            server = from.name,
            step = "demoted",
            source = to.name,
            "switchover: the old primary replicates from the new"
        );
        self.repoint(others, to, Some(&at)).await;
        Ok(at)
    }

    /// Unplanned: `to` applies everything it `received` from the failed primary, becomes
    /// writable, and `others` replicate from it. Returns where its history as primary begins.
    pub async fn failover(&self, to: &Server, received: &Position, others: &[&Server]) -> Result<Position, StepFailed> {
        let mut b = self.admin(to).await?;
        b.wait_applied(received, self.catch_up).await?;
        let at = b.current_position().await?;
        info!(server = to.name, step = "caught_up", position = %at, "failover: the candidate applied what it received");
        if let Err(e) = self.make_primary(&mut b).await {
            // Still a replica, threads running: the next check may try again.
            let _ = b.set_read_only(true).await;
            let _ = b.start_replicating().await;
            return Err(e);
        }
        self.repoint(others, to, None).await;
        Ok(at)
    }

    /// Stops `b` replicating and makes it writable.
    async fn make_primary(&self, b: &mut Admin<'_>) -> Result<(), StepFailed> {
        b.stop_replicating().await?;
        b.set_read_only(false).await
    }

    /// Points every server in `others` at `primary`; one that fails is logged and left (it
    /// shows as broken, and the rejoin tries again).
    async fn repoint(&self, others: &[&Server], primary: &Server, after: Option<&Position>) {
        for other in others {
            let step = async {
                let mut c = self.admin(other).await?;
                if let Some(at) = after {
                    c.wait_applied(at, self.catch_up).await?;
                }
                c.replicate_from(primary, self.replication, "slave_pos", self.login.tls.is_some()).await
            };
            match step.await {
                Ok(()) => info!(server = other.name, source = primary.name, "replica repointed"),
                Err(e) => warn!(error = %e, "a replica could not be repointed; it shows as broken"),
            }
        }
    }

    /// Read-only on a server that is not the primary, so nothing is written where no one reads.
    pub async fn fence(&self, server: &Server) -> Result<(), StepFailed> {
        self.admin(server).await?.set_read_only(true).await
    }

    /// Points a returning server at `primary`, from its own binlog's position.
    pub async fn rejoin(&self, server: &Server, primary: &Server) -> Result<(), StepFailed> {
        let mut c = self.admin(server).await?;
        c.replicate_from(primary, self.replication, "current_pos", self.login.tls.is_some()).await
    }

    /// Ends the client sessions on the old primary (they hold connections that can no longer
    /// write), so applications reconnect by name.
    pub async fn end_sessions(&self, server: &Server) -> Result<usize, StepFailed> {
        let keep = [self.login.user, self.replication.user.as_str()];
        self.admin(server).await?.end_client_sessions(&keep).await
    }
}

/// Clears read-only again after a failed step, and returns the step's error.
async fn undo_read_only(a: &mut Admin<'_>, e: StepFailed) -> StepFailed {
    match a.set_read_only(false).await {
        Ok(()) => warn!(error = %e, "switchover failed; the primary is writable again"),
        Err(undo) => warn!(error = %e, undo = %undo, "switchover failed and the primary is still read-only"),
    }
    e
}
