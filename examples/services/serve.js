// Shared by the example services: listen on PORT (or any free port) and say which, so the demo
// can find each service; stop cleanly on SIGTERM so the agent flushes its telemetry.
function listen(app) {
  const server = app.listen(Number(process.env.PORT) || 0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  // Under the demo: its end (even a SIGKILL) closes our stdin, and we stop too.
  if (process.env.STALLSCOPE_DEMO) process.stdin.on('end', stop).resume();
  return server;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { listen, sleep };
