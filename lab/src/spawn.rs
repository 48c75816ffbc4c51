//! The handles' spawner in the lab: a driver task a handle spawns joins
//! the lab's executor.

use std::sync::{Arc, Mutex};

use tokenflight::Task;

use crate::executor::Inbox;

/// The handles' spawner in the lab: their driver tasks run on the lab's
/// executor, in the same deterministic order as everything else.
///
/// # Examples
///
/// ```
/// use tokenflight::Spawn;
/// use tokenflight_lab::Executor;
///
/// let mut executor = Executor::new();
/// executor.spawner().spawn(Box::pin(async {}));
/// assert_eq!(executor.run(), 1);
/// ```
#[derive(Clone)]
pub struct LabSpawn {
    inbox: Arc<Mutex<Inbox>>,
}

impl LabSpawn {
    pub(crate) fn new(inbox: Arc<Mutex<Inbox>>) -> Self {
        LabSpawn { inbox }
    }
}

impl std::fmt::Debug for LabSpawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LabSpawn")
    }
}

impl tokenflight::Spawn for LabSpawn {
    fn spawn(&self, task: Task) {
        let mut inbox = self.inbox.lock().expect("the inbox is never poisoned");
        inbox.spawned.push(task);
    }
}
