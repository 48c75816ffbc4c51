//! The lab's executor: one thread, tasks polled in the order they were
//! woken, so that a run replays exactly.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

use tokenflight::Task;

use crate::spawn::LabSpawn;

/// A task's number in the lab, in spawn order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

type LocalTask = Pin<Box<dyn Future<Output = ()>>>;

/// What wakers and the spawner reach from any thread: the tasks woken, and
/// the tasks handed over by a handle, in order.
#[derive(Default)]
pub(crate) struct Inbox {
    woken: VecDeque<TaskId>,
    pub(crate) spawned: Vec<Task>,
}

/// A deterministic single-threaded executor. Tasks run only inside
/// [`run`](Executor::run), in the order they were woken (spawned counts as
/// woken); a task woken twice before it runs is polled once.
///
/// # Examples
///
/// ```
/// use tokenflight_lab::Executor;
///
/// let mut executor = Executor::new();
/// let answer = executor.spawn(async { 6 * 7 });
/// assert_eq!(answer.take(), None, "not run yet");
/// executor.run();
/// assert_eq!(answer.take(), Some(42));
/// ```
pub struct Executor {
    tasks: BTreeMap<TaskId, LocalTask>,
    inbox: Arc<Mutex<Inbox>>,
    spawned: u64,
    polls: u64,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("tasks", &self.tasks.len())
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

/// The output of a task, once it has finished.
///
/// # Examples
///
/// ```
/// use tokenflight_lab::Executor;
///
/// let mut executor = Executor::new();
/// let done = executor.spawn(async {});
/// executor.run();
/// assert!(done.is_done());
/// ```
#[derive(Debug)]
pub struct Joined<R> {
    id: TaskId,
    output: Rc<RefCell<Option<R>>>,
    finished: Rc<RefCell<bool>>,
}

impl<R> Joined<R> {
    /// The task.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether it finished (its output may have been taken).
    pub fn is_done(&self) -> bool {
        *self.finished.borrow()
    }

    /// Its output, if it finished and the output was not taken yet.
    pub fn take(&self) -> Option<R> {
        self.output.borrow_mut().take()
    }
}

/// How many polls one [`Executor::run`] may take before it counts as a
/// livelock: far more than any lab scenario needs.
pub const MAX_POLLS_PER_RUN: u64 = 1_000_000;

impl Executor {
    /// No tasks.
    pub fn new() -> Self {
        Executor {
            tasks: BTreeMap::new(),
            inbox: Arc::default(),
            spawned: 0,
            polls: 0,
        }
    }

    /// Adds `future` as a task; it runs in the next [`run`](Executor::run).
    pub fn spawn<R: 'static>(&mut self, future: impl Future<Output = R> + 'static) -> Joined<R> {
        let output = Rc::new(RefCell::new(None));
        let finished = Rc::new(RefCell::new(false));
        let (out, fin) = (Rc::clone(&output), Rc::clone(&finished));
        let id = self.add(Box::pin(async move {
            let result = future.await;
            *out.borrow_mut() = Some(result);
            *fin.borrow_mut() = true;
        }));
        Joined {
            id,
            output,
            finished,
        }
    }

    fn add(&mut self, task: LocalTask) -> TaskId {
        self.spawned += 1;
        let id = TaskId(self.spawned);
        self.tasks.insert(id, task);
        self.lock().woken.push_back(id);
        id
    }

    /// Drops task `id`'s future (a caller that gives up); returns whether
    /// it was still running. The drop runs here, outside any poll.
    pub fn cancel(&mut self, id: TaskId) -> bool {
        self.tasks.remove(&id).is_some()
    }

    /// Whether task `id` is still running.
    pub fn is_running(&self, id: TaskId) -> bool {
        self.tasks.contains_key(&id)
    }

    /// The tasks still running.
    pub fn running(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks.keys().copied()
    }

    /// Polls woken tasks, in order, until none is woken; returns how many
    /// polls it took.
    ///
    /// # Panics
    ///
    /// After [`MAX_POLLS_PER_RUN`] polls: the tasks wake each other forever.
    pub fn run(&mut self) -> u64 {
        let mut polls = 0;
        loop {
            let spawned = std::mem::take(&mut self.lock().spawned);
            for task in spawned {
                self.add(task);
            }
            let next = self.lock().woken.pop_front();
            let Some(id) = next else {
                return polls;
            };
            polls += 1;
            assert!(
                polls <= MAX_POLLS_PER_RUN,
                "livelock: {MAX_POLLS_PER_RUN} polls in one run"
            );
            // A task woken more than once before it runs is polled once.
            self.lock().woken.retain(|w| *w != id);
            let Some(mut task) = self.tasks.remove(&id) else {
                continue;
            };
            let waker = Waker::from(Arc::new(TaskWaker {
                id,
                inbox: Arc::clone(&self.inbox),
            }));
            let mut cx = Context::from_waker(&waker);
            self.polls += 1;
            if task.as_mut().poll(&mut cx).is_pending() {
                self.tasks.insert(id, task);
            }
        }
    }

    /// Every poll so far.
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// A [`Spawn`](tokenflight::Spawn) that hands the handle's tasks to this
    /// executor.
    pub fn spawner(&self) -> LabSpawn {
        LabSpawn::new(Arc::clone(&self.inbox))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().expect("the inbox is never poisoned")
    }
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

/// Wakes one task of the lab: puts it in line.
struct TaskWaker {
    id: TaskId,
    inbox: Arc<Mutex<Inbox>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut inbox = self.inbox.lock().expect("the inbox is never poisoned");
        inbox.woken.push_back(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that wakes itself `n` times before it ends, logging each
    /// poll.
    struct Yield(u32, Rc<RefCell<Vec<&'static str>>>, &'static str);

    impl Future for Yield {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<()> {
            self.1.borrow_mut().push(self.2);
            if self.0 == 0 {
                return std::task::Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    #[test]
    fn tasks_run_in_the_order_they_were_woken() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut executor = Executor::new();
        executor.spawn(Yield(1, Rc::clone(&log), "a"));
        executor.spawn(Yield(0, Rc::clone(&log), "b"));
        assert_eq!(executor.run(), 3);
        assert_eq!(*log.borrow(), ["a", "b", "a"]);
    }

    #[test]
    fn a_cancelled_task_is_dropped_and_never_polled_again() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut executor = Executor::new();
        let task = executor.spawn(Yield(5, Rc::clone(&log), "a"));
        assert!(executor.cancel(task.id()));
        assert!(!executor.cancel(task.id()));
        executor.run();
        assert!(log.borrow().is_empty());
        assert!(!task.is_done());
    }

    #[test]
    #[should_panic(expected = "livelock")]
    fn a_task_that_wakes_itself_forever_is_stopped() {
        let mut executor = Executor::new();
        let log = Rc::new(RefCell::new(Vec::new()));
        executor.spawn(Yield(u32::MAX, log, "a"));
        executor.run();
    }
}
