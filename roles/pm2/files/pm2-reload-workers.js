// Reload all of an app's PM2 cluster workers at once, then print the directory each online worker runs in.
// Installed by flora.deploy.pm2; run on the host by flora.deploy.release_activate.
//
//   node pm2-reload-workers.js <pm2 module directory> <app name> reload|list [batch]
//
// `pm2 reload` replaces two or fewer workers one after the other (lib/API.js caps its concurrency at 1 for
// them), so a reload takes twice the app's start-up and shutdown. Here each worker gets its own reload, all at
// once: PM2 still starts each replacement, waits until it is ready (it listens; or, with wait_ready, it sent
// "ready") and only then stops the old worker, so every worker keeps serving until its successor does. The ids
// are passed as numbers: PM2 matches the ready message against the id with ===, and the CLI's `pm2 reload 0`
// passes a string and so waits listen_timeout instead. A batch above 0 replaces that many workers at a time, for
// hosts short of memory.
//
// Mode reload is done once every replacement is ready: it writes "reloaded" and the workers' directories to
// its standard output and closes it ("failed <exit code>" when it fails). It then stays connected until PM2 has
// stopped the old workers, which finish their requests meanwhile. Whoever starts it reads its output to the
// end and need not wait any longer; a lock it hands down (release_activate's reload lock) is held until the old
// workers are gone, because a reload that starts before PM2 is done with the old workers of the previous one
// makes PM2 lose track of workers.
// Exit 3: the app does not run as online cluster workers, or no PM2 daemon runs (this script never starts
// one: it would inherit the descriptors); start or reload it from its ecosystem file instead.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

const [pm2Dir, name, mode, batchArg] = process.argv.slice(2);
const pm2 = require(pm2Dir);

// Mode reload's report on standard output, written once and then closed: "reloaded" and the directories, or
// "failed <exit code>". What it says afterwards goes to standard error only.
let reported = mode !== "reload";
function report(text) {
  if (reported) return;
  reported = true;
  fs.writeSync(1, text);
  fs.closeSync(1);
}

function done(code, message) {
  if (message) console.error(message);
  report(`failed ${code}\n`);
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
    fs.writeSync(1, workerDirs(procs));
    done(0);
  });
}

function daemonRuns() {
  const home = process.env.PM2_HOME || path.join(os.homedir(), ".pm2");
  try {
    process.kill(Number(fs.readFileSync(path.join(home, "pm2.pid"), "utf8")), 0);
    return true;
  } catch (err) {
    return false;
  }
}

// The directories the online workers run in, one per line.
function workerDirs(procs) {
  let dirs = "";
  for (const proc of procs) {
    if (proc.pm2_env.status !== "online" || !proc.pid) continue;
    try {
      dirs += `${fs.realpathSync(`/proc/${proc.pid}/cwd`)}\n`;
    } catch (err) {
      // The worker exited since PM2 listed it: it runs nothing.
    }
  }
  return dirs;
}

// A worker's reload: ready settles once its replacement is ready, finished once PM2 has stopped the old worker.
function reloadWorker(id, readyWaiters) {
  let readyNow;
  const ready = new Promise((resolve) => {
    readyNow = resolve;
  });
  readyWaiters.set(id, readyNow);
  const finished = new Promise((resolve, reject) => {
    // force: the reloads run together, and each would otherwise refuse while PM2's reload lock is taken.
    pm2.reload(id, { force: true }, (err) => {
      if (err) return reject(new Error(`worker ${id}: ${err.message || err}`));
      console.error(`worker ${id} replaced: its successor is ready and the old worker has stopped`);
      return resolve();
    });
  });
  // Without wait_ready PM2 waits for "listening" instead, and no ready message comes.
  finished.then(readyNow, () => {});
  return { ready: Promise.race([ready, finished]), finished };
}

if (mode === "reload" && !daemonRuns()) done(3, "no PM2 daemon runs");

pm2.connect((err) => {
  if (err) return done(1, `cannot reach the PM2 daemon: ${err.message || err}`);
  if (mode === "list") return printWorkers();
  return describe((procs) => {
    const running = procs.length > 0 && procs.every(
      (proc) => proc.pm2_env.status === "online" && proc.pm2_env.exec_mode === "cluster_mode",
    );
    if (!running) return done(3, `${name} is not running as online cluster workers`);
    return pm2.launchBus((busErr, bus) => {
      if (busErr) return done(1, `cannot listen to the PM2 daemon: ${busErr.message || busErr}`);
      const readyWaiters = new Map();
      bus.on("process:msg", (packet) => {
        if (packet.raw !== "ready" || !packet.process || packet.process.name !== name) return;
        const ready = readyWaiters.get(packet.process.pm_id);
        if (ready) {
          console.error(`worker ${packet.process.pm_id}'s successor sent ready`);
          ready();
        }
      });
      const ids = procs.map((proc) => Number(proc.pm_id));
      const batch = Number(batchArg) > 0 ? Number(batchArg) : ids.length;
      // PM2 kills an old worker that outlives its kill_timeout: waiting much longer means something is wrong.
      const stopLimit = Math.max(1600, ...procs.map((proc) => Number(proc.pm2_env.kill_timeout) || 0)) + 30000;
      console.error(`reloading ${name}'s workers ${ids.join(", ")} (${batch} at a time)`);
      // Batches are for hosts short of memory: the old workers of one are gone before the next starts.
      let earlier = Promise.resolve();
      for (let start = 0; start + batch < ids.length; start += batch) {
        const group = ids.slice(start, start + batch);
        earlier = earlier.then(() => Promise.all(group.map((id) => reloadWorker(id, readyWaiters).finished)));
      }
      const lastGroup = ids.slice(Math.floor((ids.length - 1) / batch) * batch);
      return earlier
        .then(() => {
          const reloads = lastGroup.map((id) => reloadWorker(id, readyWaiters));
          return Promise.all(reloads.map((reload) => reload.ready)).then(() => reloads);
        })
        .then((reloads) => describe((now) => {
          report(`reloaded\n${workerDirs(now)}`);
          const timeout = new Promise((resolve, reject) => {
            setTimeout(() => reject(new Error(`old workers still stopping after ${stopLimit} ms`)), stopLimit).unref();
          });
          Promise.race([Promise.all(reloads.map((reload) => reload.finished)), timeout])
            .then(() => done(0), (stopErr) => done(1, stopErr.message));
        }))
        .catch((reloadErr) => done(1, reloadErr.message));
    });
  });
});
