// Reload all of an app's PM2 cluster workers at once, then print the directory each online worker runs in.
//
//   node reload_workers.js <pm2 module directory> <app name> reload|list [batch]
//
// `pm2 reload` replaces two or fewer workers one after the other (lib/API.js caps its concurrency at 1 for
// them), so a reload takes twice the app's start-up and shutdown. Here each worker gets its own reload, all at
// once: PM2 still starts each replacement, waits for its "ready" (wait_ready) and only then stops the old
// worker, so every worker keeps serving until its successor does. The ids are passed as numbers: PM2 matches
// the ready message against the id with ===, and the CLI's `pm2 reload 0` passes a string and so waits
// listen_timeout instead. A batch above 0 replaces that many workers at a time, for hosts short of memory.
// Exit 3: the app does not run as online cluster workers; start or reload it from its ecosystem file instead.
"use strict";

const fs = require("fs");

const [pm2Dir, name, mode, batchArg] = process.argv.slice(2);
const pm2 = require(pm2Dir);

function done(code, message) {
  if (message) console.error(message);
  pm2.disconnect();
  process.exit(code);
}

function describe(next) {
  pm2.describe(name, (err, procs) => {
    if (err) return done(1, `pm2 could not describe ${name}: ${err.message || err}`);
    return next(procs || []);
  });
}

function printWorkers() {
  describe((procs) => {
    for (const proc of procs) {
      if (proc.pm2_env.status !== "online" || !proc.pid) continue;
      try {
        console.log(fs.realpathSync(`/proc/${proc.pid}/cwd`));
      } catch (err) {
        // The worker exited since PM2 listed it: it runs nothing.
      }
    }
    done(0);
  });
}

function reloadOne(id) {
  return new Promise((resolve, reject) => {
    // force: the reloads run together, and each would otherwise refuse while PM2's reload lock is taken.
    pm2.reload(id, { force: true }, (err) => (err ? reject(new Error(`worker ${id}: ${err.message || err}`)) : resolve()));
  });
}

pm2.connect((err) => {
  if (err) return done(1, `cannot reach the PM2 daemon: ${err.message || err}`);
  if (mode === "list") return printWorkers();
  return describe((procs) => {
    const running = procs.length > 0 && procs.every(
      (proc) => proc.pm2_env.status === "online" && proc.pm2_env.exec_mode === "cluster_mode",
    );
    if (!running) return done(3, `${name} is not running as online cluster workers`);
    const ids = procs.map((proc) => Number(proc.pm_id));
    const batch = Number(batchArg) > 0 ? Number(batchArg) : ids.length;
    console.error(`reloading ${name}'s workers ${ids.join(", ")}, ${batch} at a time`);
    let reloads = Promise.resolve();
    for (let start = 0; start < ids.length; start += batch) {
      const group = ids.slice(start, start + batch);
      reloads = reloads.then(() => Promise.all(group.map(reloadOne)));
    }
    return reloads.then(printWorkers, (reloadErr) => done(1, reloadErr.message));
  });
});
