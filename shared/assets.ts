/**
 * The built browser assets, as `scripts/build.ts` wrote them: the server reads
 * them (lib/http/assets.ts) and the page components render them.
 */
export interface Assets {
  /** `/static/build/islands-<hash>.js`, or null when not built. */
  js: string | null;
  /** `/static/build/app-<hash>.css`, or the unbuilt stylesheet. */
  css: string;
}
