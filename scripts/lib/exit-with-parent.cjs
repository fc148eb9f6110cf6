'use strict';
/**
 * Preloaded (`node --require`) into the long-lived Node processes that the test suite, the
 * benchmark and the soak start: ends the process once the process that started it is gone. Those
 * drivers kill their children on the way out, but one killed with SIGKILL cannot, and Node has no
 * parent-death signal. A service process left behind would go on taking jobs from the queues and
 * rows of the next run on the same Postgres and Redis, and disturb it.
 *
 * The parent is asked every second whether it is still there (signal 0). The process ends as a
 * crash does (SIGKILL): what the service survives anyway, and nothing of the orphan's shutdown can
 * hold it.
 */
const parent = process.ppid;
const CHECK_EVERY_MS = 1000;

setInterval(() => {
  try {
    process.kill(parent, 0);
  } catch (err) {
    // EPERM: the parent is there, under another user; only ESRCH says it is gone.
    if (err.code === 'ESRCH') process.kill(process.pid, 'SIGKILL');
  }
}, CHECK_EVERY_MS).unref();
