/** The panel's version: the REST handshake compares it with the server extension's (tests keep it equal to
 * mm_magics/_version.py and package.json). */
export const VERSION = '0.1.0';
