/**
 * The query parameters a token must never travel in. `/admin/ws` refuses an
 * upgrade that carries one (400 `token_in_url`), and `probe` shortens them
 * whenever it prints a URL.
 *
 * This folder holds what the server, the browser and the CLI all import; a
 * module here imports nothing, so any bundle can carry it.
 */
export const URL_TOKEN_PARAMS: readonly string[] = ["token", "access_token", "authorization"];
