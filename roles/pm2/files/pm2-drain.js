// Loaded into each of the app's PM2 workers with `node --require` (the ecosystem's node_args; flora.deploy.pm2).
//
// PM2 replaces a cluster worker by starting its successor and, once that one listens, signalling the old one
// with the daemon's PM2_KILL_SIGNAL, which the pm2-<user> unit sets to SIGTERM. An app whose own SIGINT handler
// exits at once (the Flora backend's does) would drop the requests it is serving and the connections the
// cluster's primary is handing it at that moment. On SIGTERM this first takes the worker out of the cluster's
// rotation and lets the requests it serves finish (cluster.worker.disconnect() closes its servers and then its
// channel to the primary), and only then raises SIGINT, so the app's own shutdown handler runs as it always
// did. It stops waiting a second before PM2's kill_timeout ends in SIGKILL. Outside a cluster worker it raises
// SIGINT at once.
"use strict";

const cluster = require("cluster");

function killTimeout() {
  try {
    return Number(JSON.parse(process.env.pm2_env).kill_timeout) || 5000;
  } catch (err) {
    return 5000;
  }
}

process.once("SIGTERM", () => {
  let signalled = false;
  const shutDown = () => {
    if (signalled) return;
    signalled = true;
    process.kill(process.pid, "SIGINT");
  };
  if (!cluster.isWorker || !cluster.worker.isConnected()) {
    shutDown();
    return;
  }
  // Keeps the worker alive between leaving the rotation and the app's own handler.
  setInterval(() => {}, 1000);
  setTimeout(shutDown, Math.max(killTimeout() - 1000, killTimeout() / 2));
  cluster.worker.once("disconnect", shutDown);
  cluster.worker.disconnect();
});
