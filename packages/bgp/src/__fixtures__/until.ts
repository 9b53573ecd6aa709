// Waiting in unit tests for something the speaker does on its own timers or in-memory I/O.

/** Resolves once `f()` holds, looking every 5 ms; throws naming `what` after `ms`. */
export const until = async (what: string, f: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};
