import { z } from "zod";

/**
 * What a user name may be: the one rule for `ADMIN_USERNAME` (lib/config.ts),
 * `deno task user:add` and the user store.
 */
export const UserName = z.string().regex(
  /^[A-Za-z0-9_.@-]{1,64}$/,
  "must be 1 to 64 letters, digits or _ . @ -",
);
