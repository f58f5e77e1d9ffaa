/**
 * One authenticated socket, as `GET /api/v1/connections` lists it
 * (CONTRACT 8.1). The server writes it; the Connections page shows it.
 */
export interface ConnectionRecord {
  id: string;
  user: string;
  role: string;
  ip: string;
  origin: string | null;
  userAgent: string | null;
  openedAt: number;
  expiresAt: number;
  instance: string;
}
