// Milliseconds since the process started, for the phase timings the plugin logs. The global
// `performance` would do, but in the plugin process it loads node:perf_hooks on first use (about
// 1 ms, and perf_hooks cannot be part of the startup snapshot); process.uptime() is already there.
export function now(): number {
  return process.uptime() * 1000;
}
