// A throwaway Verdaccio on 127.0.0.1 with its storage in a given folder: @marlin/* is served only
// from what is published to it; everything else comes from the uplink (when given) and is cached
// in the storage, so a storage prepared online serves installs offline.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function config(dir, uplink) {
  const proxy = uplink ? "\n    proxy: upstream" : "";
  return `storage: ${join(dir, "storage")}
auth:
  htpasswd:
    file: ${join(dir, "htpasswd")}
    max_users: 10
${uplink ? `uplinks:\n  upstream:\n    url: ${uplink}\n    timeout: 120s\n    maxage: 30m\n` : "uplinks: {}\n"}packages:
  "@marlin/*":
    access: $all
    publish: $authenticated
  "**":
    access: $all
    publish: $authenticated${proxy}
publish:
  allow_offline: true
max_body_size: 200mb
web:
  enable: false
log: { type: stdout, format: pretty, level: warn }
`;
}

/** The npm_config_* variables a parent pnpm/npm sets would override --registry: drop them. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Starts Verdaccio; resolves to { url, npmrc, stop } once it answers, with a user created and its
 * token in the npmrc file (for publishing). `stop()` kills it and waits for the exit.
 */
export async function startVerdaccio({ dir, uplink, log = () => {} }) {
  mkdirSync(join(dir, "storage"), { recursive: true });
  const cfg = join(dir, "config.yaml");
  writeFileSync(cfg, config(dir, uplink));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const pkgJson = require.resolve("verdaccio/package.json");
  const { bin: bins } = JSON.parse(readFileSync(pkgJson, "utf8"));
  const bin = join(dirname(pkgJson), typeof bins === "string" ? bins : bins.verdaccio);
  const child = spawn(process.execPath, [bin, "--config", cfg, "--listen", `127.0.0.1:${port}`], { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (b) => {
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((r) => child.once("exit", r));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  };
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`verdaccio exited with ${child.exitCode}: ${output}`);
      try {
        if ((await fetch(`${url}/-/ping`)).ok) break;
      } catch {}
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${url} within 60 s: ${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const user = { name: "marlin-release", password: `pw-${process.pid}-${Date.now()}`, type: "user", roles: [], date: new Date().toISOString() };
    const res = await fetch(`${url}/-/user/org.couchdb.user:${user.name}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(user),
    });
    const { token } = await res.json();
    if (!token) throw new Error(`verdaccio gave no token (HTTP ${res.status})`);
    const npmrc = join(dir, "npmrc");
    writeFileSync(npmrc, `registry=${url}/\n//127.0.0.1:${port}/:_authToken=${token}\n`);
    log(`[verdaccio] ${url} (storage ${join(dir, "storage")}${uplink ? `, uplink ${uplink}` : ", no uplink"})`);
    return { url, npmrc, stop, output: () => output };
  } catch (err) {
    await stop();
    throw err;
  }
}
