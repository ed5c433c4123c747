// Runs a command with a time limit, in its own process group (so an npm install's build scripts
// die with it), and collects its output.
import { spawn } from "node:child_process";

const running = new Set();

/** Kills every command still running (cleanup on a signal or the overall deadline). */
export function killAll() {
  for (const c of running) {
    try {
      process.kill(-c.pid, "SIGKILL");
    } catch {}
  }
}

/** Resolves to { code, out } (stdout and stderr interleaved); never rejects. `echo` streams it. */
export function run(cmd, args, { cwd, env, timeoutS = 600, echo = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let out = "";
    const take = (b) => {
      out += b.toString();
      if (echo) process.stdout.write(b);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    const timer = setTimeout(() => {
      out += `\n[run] ${cmd} ${args.join(" ")}: killed after ${timeoutS} s\n`;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, timeoutS * 1000);
    const done = (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, out });
    };
    child.once("error", (e) => {
      out += String(e);
      done(-1);
    });
    child.once("close", (code, signal) => done(code ?? (signal ? 128 : -1)));
  });
}
