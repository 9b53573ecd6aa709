// Independent hex fixtures: written out by hand from RFC 826's layout, not produced by the encoder.
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A pod (0a:58:0a:41:00:07, 10.65.0.7) asking who has 169.254.1.1, as captured on a veth. */
export const REQUEST_FOR_GATEWAY = hex(`
  ffffffffffff 0a580a410007 0806
  0001 0800 06 04 0001 0a580a410007 0a410007 000000000000 a9fe0101`);

/** The answer podnet sends: 169.254.1.1 is at ee:ee:ee:ee:ee:ee, padded to 60 bytes. */
export const REPLY_FROM_HOST = hex(`
  0a580a410007 eeeeeeeeeeee 0806
  0001 0800 06 04 0002 eeeeeeeeeeee a9fe0101 0a580a410007 0a410007
  000000000000000000000000000000000000`);
