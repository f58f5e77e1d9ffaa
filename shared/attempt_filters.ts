/**
 * What the attempt filters accept, for the API's schema on the server and
 * the explorer's form in the browser. Imports nothing.
 */

/** How a credential reached Lookout (`login`: POST /auth/login; `api_key`: a metrics key). */
export const TRANSPORTS = ["message", "header", "upgrade", "login", "api_key"] as const;
export type Transport = typeof TRANSPORTS[number];

/** Most rows one export answers; a wider filter is cut there (newest first). */
export const EXPORT_MAX_ROWS = 100_000;

/** The formats of `GET /api/v1/attempts/export`. */
export const EXPORT_FORMATS = ["csv", "json"] as const;
export type ExportFormat = typeof EXPORT_FORMATS[number];
