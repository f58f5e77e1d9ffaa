import { UserName } from "./user_name.ts";
import { hashPassword, type PasswordHash } from "./passwords.ts";
import { type Role, ROLES } from "../../shared/protocol.ts";
import { userKey, usersPrefix } from "../store/keys.ts";
import { type RevocationEvent, revokeUserOp } from "./revocation.ts";

/** A user as stored. */
export interface StoredUser {
  name: string;
  role: Role;
  password: PasswordHash;
  createdAt: number;
  updatedAt: number;
}

export { UserName };

/** Reads a user, or null. */
export async function getUser(kv: Deno.Kv, name: string): Promise<StoredUser | null> {
  return (await kv.get<StoredUser>(userKey(name))).value;
}

/**
 * Creates a user, or resets the role and password of an existing one. A
 * reset revokes, in the same commit, every session and token the user had:
 * the old password or role must not outlive it. `revocation` is that
 * event (null for a new user); every instance's revocation feed acts on it.
 */
export async function putUser(
  kv: Deno.Kv,
  options: { name: string; role: Role; password: string },
): Promise<{ created: boolean; revocation: RevocationEvent | null }> {
  UserName.parse(options.name);
  if (!ROLES.includes(options.role)) {
    throw new RangeError(
      `Cannot save user as the role must be admin or viewer: current value is "${options.role}"`,
    );
  }
  const password = await hashPassword(options.password);
  const existing = await kv.get<StoredUser>(userKey(options.name));
  const now = Date.now();
  const user: StoredUser = {
    name: options.name,
    role: options.role,
    password,
    createdAt: existing.value?.createdAt ?? now,
    updatedAt: now,
  };
  const op = kv.atomic().check(existing).set(userKey(options.name), user);
  const revocation = existing.value === null ? null : revokeUserOp(op, options.name, now);
  const result = await op.commit();
  if (!result.ok) {
    throw new Error(`Cannot save user as it changed meanwhile: ${options.name}`);
  }
  return { created: existing.value === null, revocation };
}

/** Whether any user exists. */
export async function hasUsers(kv: Deno.Kv): Promise<boolean> {
  for await (const _ of kv.list({ prefix: usersPrefix() }, { limit: 1 })) return true;
  return false;
}

/**
 * Creates the first admin from `ADMIN_USERNAME`/`ADMIN_PASSWORD` when no user
 * exists yet. Returns whether it did.
 */
export async function ensureFirstAdmin(
  kv: Deno.Kv,
  name: string | undefined,
  password: string | undefined,
): Promise<boolean> {
  if (name === undefined || password === undefined) return false;
  if (await hasUsers(kv)) return false;
  const hash = await hashPassword(password);
  const now = Date.now();
  const user: StoredUser = {
    name,
    role: "admin",
    password: hash,
    createdAt: now,
    updatedAt: now,
  };
  const result = await kv.atomic().check({ key: userKey(name), versionstamp: null })
    .set(userKey(name), user).commit();
  return result.ok;
}

/** Every user, by name, without their password hashes. */
export async function listUsers(
  kv: Deno.Kv,
): Promise<{ name: string; role: Role; createdAt: number; updatedAt: number }[]> {
  const users = [];
  for await (const entry of kv.list<StoredUser>({ prefix: usersPrefix() })) {
    const { name, role, createdAt, updatedAt } = entry.value;
    users.push({ name, role, createdAt, updatedAt });
  }
  return users;
}

/**
 * Deletes user `name` and, in the same commit, revokes every session and
 * token they had, so every instance closes their sockets (4403 `revoked`).
 * Returns the removed user, or null when there is no such user.
 */
export async function removeUser(
  kv: Deno.Kv,
  name: string,
): Promise<{ user: StoredUser; revocation: RevocationEvent } | null> {
  const existing = await kv.get<StoredUser>(userKey(name));
  if (existing.value === null) return null;
  const op = kv.atomic().check(existing).delete(userKey(name));
  const revocation = revokeUserOp(op, name);
  const result = await op.commit();
  if (!result.ok) {
    throw new Error(`Cannot remove the user as it changed meanwhile: ${name}`);
  }
  return { user: existing.value, revocation };
}
