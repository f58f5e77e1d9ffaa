/**
 * What each token algorithm costs (issue 12): in one run, jose alone
 * (verifies/s in this process, the reference) and Lookout's auth churn
 * (connect + first-message auth + close per client, connects/s) with HS256
 * tokens of its own and RS256, ES256 and EdDSA tokens of an identity
 * provider whose JWKS this script serves on a loopback port. Tokens are all
 * signed before the clock starts.
 *
 *   deno run -A bench/verify_cost.ts [--verifies N] [--connects N] [--concurrency C]
 */
import { parseArgs } from "node:util";
import {
  createLocalJWKSet,
  exportJWK,
  type JWK,
  jwtVerify,
  type JWTVerifyGetKey,
  SignJWT,
} from "jose";

type Alg = "HS256" | "RS256" | "ES256" | "EdDSA";
const ALGS: Alg[] = ["HS256", "RS256", "ES256", "EdDSA"];
const IDP = "https://idp.bench/";
const SECRET = "bench-secret-".padEnd(40, "x");

const { values } = parseArgs({
  args: Deno.args,
  options: {
    verifies: { type: "string", default: "2000" },
    connects: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "8" },
  },
});
const VERIFIES = Number(values.verifies);
const CONNECTS = Number(values.connects);
const CONCURRENCY = Number(values.concurrency);

interface Signer {
  alg: Alg;
  key: CryptoKey;
  verifyKey: CryptoKey | Uint8Array | JWTVerifyGetKey;
  jwk: JWK | null;
}

async function signer(alg: Alg): Promise<Signer> {
  if (alg === "HS256") {
    const bytes = new TextEncoder().encode(SECRET);
    const key = await crypto.subtle.importKey(
      "raw",
      bytes,
      { name: "HMAC", hash: "SHA-256" },
      false,
      [
        "sign",
        "verify",
      ],
    );
    return { alg, key, verifyKey: key, jwk: null };
  }
  const params = alg === "RS256"
    ? {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    }
    : alg === "ES256"
    ? { name: "ECDSA", namedCurve: "P-256" }
    : { name: "Ed25519" };
  const pair = await crypto.subtle.generateKey(params, true, ["sign", "verify"]) as CryptoKeyPair;
  const jwk = { ...await exportJWK(pair.publicKey), kid: `bench-${alg}`, alg, use: "sig" };
  // jose alone looks the key up in a JWKS as Lookout does, so both pay for the kid lookup.
  return { alg, key: pair.privateKey, verifyKey: createLocalJWKSet({ keys: [jwk] }), jwk };
}

function sign(s: Signer, n: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const own = s.alg === "HS256";
  return new SignJWT({ role: "admin", jti: `t${n}` })
    .setProtectedHeader({ alg: s.alg, ...(s.jwk ? { kid: s.jwk.kid } : {}) })
    .setSubject(`user${n % 50}`)
    .setIssuer(own ? "lookout" : IDP)
    .setAudience(own ? "lookout" : "lookout-api")
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(s.key);
}

const signers = await Promise.all(ALGS.map(signer));

// 1. jose alone, in this process.
const joseRate: Record<string, number> = {};
for (const s of signers) {
  const token = await sign(s, 0);
  const options = s.alg === "HS256"
    ? { issuer: "lookout", audience: "lookout" }
    : { issuer: IDP, audience: "lookout-api" };
  for (let i = 0; i < 100; i++) {
    await jwtVerify(token, s.verifyKey as CryptoKey, { algorithms: [s.alg], ...options });
  }
  const started = performance.now();
  for (let i = 0; i < VERIFIES; i++) {
    await jwtVerify(token, s.verifyKey as CryptoKey, { algorithms: [s.alg], ...options });
  }
  joseRate[s.alg] = VERIFIES / ((performance.now() - started) / 1000);
  console.error(`jose ${s.alg}: ${Math.round(joseRate[s.alg])} verifies/s`);
}

// 2. Lookout's auth churn per algorithm, one server process for all four.
const jwks = { keys: signers.flatMap((s) => s.jwk ? [s.jwk] : []) };
const jwksServer = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  () => Response.json(jwks),
);
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = (listener.addr as Deno.NetAddr).port;
listener.close();
const kvDir = await Deno.makeTempDir({ prefix: "lookout_verify_cost_" });
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
  env: {
    HOSTNAME: "127.0.0.1",
    PORT: String(port),
    KV_PATH: `${kvDir}/kv.sqlite3`,
    JWT_SECRET: SECRET,
    LOOKOUT_WORKERS: "1",
    JWT_ISSUERS: JSON.stringify([{
      issuer: IDP,
      audience: "lookout-api",
      jwksUrl: `http://127.0.0.1:${jwksServer.addr.port}/jwks.json`,
      algorithms: ["RS256", "ES256", "EdDSA"],
    }]),
  },
  stdout: "null",
  stderr: "null",
}).spawn();
const base = `http://127.0.0.1:${port}`;
for (let tries = 0;; tries++) {
  const ok = await fetch(`${base}/healthz`).then(async (r) => {
    await r.body?.cancel();
    return r.ok;
  }, () => false);
  if (ok) break;
  if (tries > 200) throw new Error("Cannot benchmark as main.ts did not come up");
  await new Promise((r) => setTimeout(r, 100));
}

/** One client: connect, authenticate with the first message, close. */
function connectOnce(url: string, token: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "authenticated") ws.close();
      else if (msg.type === "auth_failed") reject(new Error(`auth failed: ${msg.reason}`));
    };
    ws.onclose = () => resolve();
    ws.onerror = () => reject(new Error("socket error"));
  });
}

const lookoutRate: Record<string, number> = {};
try {
  for (const s of signers) {
    const tokens = await Promise.all(
      Array.from({ length: CONNECTS + 50 }, (_, i) => sign(s, i)),
    );
    let next = 0;
    const pool = async (count: number) => {
      const stop = next + count;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < stop) await connectOnce(`ws://127.0.0.1:${port}/admin/ws`, tokens[next++]);
      }));
    };
    await pool(50); // warm-up, and the JWKS fetch
    const started = performance.now();
    await pool(CONNECTS);
    lookoutRate[s.alg] = CONNECTS / ((performance.now() - started) / 1000);
    console.error(`lookout ${s.alg}: ${Math.round(lookoutRate[s.alg])} connects/s`);
  }
} finally {
  child.kill("SIGTERM");
  await child.status;
  await jwksServer.shutdown();
  await Deno.remove(kvDir, { recursive: true });
}

console.log(
  `| algorithm | jose alone, verifies/s | Lookout connect+auth+close, connects/s | vs HS256 |`,
);
console.log(`| --- | ---: | ---: | ---: |`);
for (const alg of ALGS) {
  console.log(
    `| ${alg} | ${Math.round(joseRate[alg])} | ${Math.round(lookoutRate[alg])} | ${
      (lookoutRate[alg] / lookoutRate.HS256).toFixed(2)
    } |`,
  );
}
