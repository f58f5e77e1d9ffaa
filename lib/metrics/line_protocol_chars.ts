/**
 * The characters the line-protocol parser looks for, as char codes, and what
 * a backslash escapes in each element; shared by the line scanner, the line
 * parser and the number readers.
 *
 * @module
 */

/** Char codes (`charCodeAt`) of the characters the grammar names. */
export const NL = 10, CR = 13, TAB = 9, SPACE = 32, QUOTE = 34, HASH = 35, COMMA = 44, EQUALS = 61;
export const BACKSLASH = 92, MINUS = 45, PLUS = 43, DOT = 46, ZERO = 48, NINE = 57;

/** Characters a backslash escapes, per element. */
export const MEASUREMENT_ESCAPES = new Set([COMMA, SPACE, BACKSLASH]);
export const KEY_ESCAPES = new Set([COMMA, EQUALS, SPACE, BACKSLASH]);
export const STRING_ESCAPES = new Set([QUOTE, BACKSLASH]);
