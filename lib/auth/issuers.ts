/**
 * `JWT_ISSUERS`: the identity providers whose tokens Lookout accepts beside
 * its own (CONTRACT 8), checked once at start-up.
 */
import { createPublicKey } from "node:crypto";
import { z } from "zod";

/** The asymmetric algorithms an issuer may use; never HS* or `none`. */
export const ISSUER_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "EdDSA",
] as const;
export type IssuerAlgorithm = typeof ISSUER_ALGORITHMS[number];

/** One trusted issuer, as configured. */
export interface IssuerConfig {
  issuer: string;
  audience: string | string[];
  /** Where the issuer publishes its keys; exactly one of this and `publicKey`. */
  jwksUrl: string | null;
  /** A PEM (SPKI) public key. */
  publicKey: string | null;
  algorithms: IssuerAlgorithm[];
  /** A dotted path into the payload (`realm_access.roles`). */
  roleClaim: string;
  /** Claim values mapped to each role; null takes `admin` and `viewer` as they are. */
  roles: { admin: string[]; viewer: string[] } | null;
  userClaim: string;
}

const LOOPBACK_NAMES = new Set(["localhost", "[::1]"]);

/** 127.0.0.0/8, ::1 and localhost: the only hosts a plain-http JWKS may come from. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_NAMES.has(hostname.toLowerCase()) ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** Which algorithms a public key of each type can verify. */
function algorithmsForKey(pem: string): readonly string[] | string {
  let key;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch {
    return "must be a PEM public key (-----BEGIN PUBLIC KEY-----)";
  }
  if (key.type !== "public") return "must be a public key, not a private one";
  switch (key.asymmetricKeyType) {
    case "rsa":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    case "rsa-pss":
      return ["PS256", "PS384", "PS512"];
    case "ec": {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === "prime256v1" || curve === "P-256") return ["ES256"];
      if (curve === "secp384r1" || curve === "P-384") return ["ES384"];
      return `must be an EC key on P-256 or P-384, not ${curve}`;
    }
    case "ed25519":
      return ["EdDSA"];
    default:
      return `must be an RSA, EC or Ed25519 key, not ${key.asymmetricKeyType}`;
  }
}

const nonEmpty = z.string().trim().min(1, "must be a non-empty string");
const claimPath = z.string().regex(
  /^[^.\s]+(\.[^.\s]+)*$/,
  "must be a claim name or a dotted path such as realm_access.roles",
);

const Entry = z.strictObject({
  issuer: nonEmpty,
  audience: z.union([nonEmpty, z.array(nonEmpty).min(1)], {
    error: "must be a non-empty string or a non-empty array of strings",
  }),
  jwksUrl: z.string().refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === "https:" ||
        (url.protocol === "http:" && isLoopbackHost(url.hostname));
    } catch {
      return false;
    }
  }, "must be https (or http on a loopback host)").optional(),
  publicKey: z.string().optional(),
  algorithms: z.array(
    z.enum(ISSUER_ALGORITHMS, { error: `must each be one of ${ISSUER_ALGORITHMS.join(" ")}` }),
  ).min(1, "must be a non-empty array"),
  roleClaim: claimPath.default("role"),
  roles: z.strictObject({
    admin: z.array(nonEmpty).default([]),
    viewer: z.array(nonEmpty).default([]),
  }).optional(),
  userClaim: claimPath.default("sub"),
}).superRefine((entry, ctx) => {
  if ((entry.jwksUrl === undefined) === (entry.publicKey === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: ["jwksUrl"],
      message: "must be set, or publicKey, but not both",
    });
    return;
  }
  if (entry.publicKey !== undefined) {
    const fits = algorithmsForKey(entry.publicKey);
    if (typeof fits === "string") {
      ctx.addIssue({ code: "custom", path: ["publicKey"], message: fits });
      return;
    }
    const wrong = entry.algorithms.filter((alg) => !fits.includes(alg));
    if (wrong.length) {
      ctx.addIssue({
        code: "custom",
        path: ["algorithms"],
        message: `must suit the publicKey, which cannot verify ${wrong.join(" ")}`,
      });
    }
  }
});

/** The outcome of {@linkcode parseIssuers}: the issuers, or one line per bad entry. */
export type ParsedIssuers = { ok: true; issuers: IssuerConfig[] } | {
  ok: false;
  errors: string[];
};

/**
 * Parses `JWT_ISSUERS` (a JSON array). Each bad entry gives one line in std
 * style naming the entry and field; a PEM key is never shown, only its size.
 */
export function parseIssuers(raw: string | undefined, ownIssuer: string): ParsedIssuers {
  if (raw === undefined || raw.trim() === "") return { ok: true, issuers: [] };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return {
      ok: false,
      errors: [
        `Cannot start as JWT_ISSUERS must be a JSON array of issuers: current value is ${
          JSON.stringify(raw.length > 80 ? raw.slice(0, 80) + "…" : raw)
        }`,
      ],
    };
  }
  if (!Array.isArray(json)) {
    return {
      ok: false,
      errors: [
        `Cannot start as JWT_ISSUERS must be a JSON array of issuers: current value is ${
          JSON.stringify(raw.length > 80 ? raw.slice(0, 80) + "…" : raw)
        }`,
      ],
    };
  }
  const errors: string[] = [];
  const issuers: IssuerConfig[] = [];
  const seen = new Set<string>();
  json.forEach((item, index) => {
    const parsed = Entry.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.filter((p) => typeof p === "string")[0];
      const name = `JWT_ISSUERS[${index}]${field === undefined ? "" : `.${field}`}`;
      const value = field === undefined
        ? item
        : (item as Record<string, unknown> | null)?.[field as string];
      const shown = field === "publicKey" && typeof value === "string"
        ? `current value has ${value.length} characters`
        : `current value is ${value === undefined ? "unset" : JSON.stringify(value)}`;
      errors.push(`Cannot start as ${name} ${issue.message}: ${shown}`);
      return;
    }
    const e = parsed.data;
    if (e.issuer === ownIssuer || seen.has(e.issuer)) {
      errors.push(
        `Cannot start as JWT_ISSUERS[${index}].issuer must differ from JWT_ISSUER and from the other issuers: current value is ${
          JSON.stringify(e.issuer)
        }`,
      );
      return;
    }
    seen.add(e.issuer);
    issuers.push({
      issuer: e.issuer,
      audience: e.audience,
      jwksUrl: e.jwksUrl ?? null,
      publicKey: e.publicKey ?? null,
      algorithms: [...new Set(e.algorithms)],
      roleClaim: e.roleClaim,
      roles: e.roles ?? null,
      userClaim: e.userClaim,
    });
  });
  return errors.length ? { ok: false, errors } : { ok: true, issuers };
}
