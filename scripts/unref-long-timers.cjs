// Preloaded into the Prisma CLI (see scripts/prisma.cjs). Its WebAssembly schema engine arms a
// 10 s guard timer that nothing clears, so every `migrate deploy` lingers 10 s after finishing.
// Long timers are unref'd: they still fire while the CLI works (its sockets keep it alive), but no
// longer hold a finished process open.
const original = global.setTimeout;
global.setTimeout = function setTimeout(fn, ms, ...args) {
  const timer = original(fn, ms, ...args);
  if (typeof ms === 'number' && ms >= 5000 && timer && typeof timer.unref === 'function') timer.unref();
  return timer;
};
