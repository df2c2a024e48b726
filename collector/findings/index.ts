// Findings: the stored measurements turned into diagnoses. Each names the culprit (a function,
// a call site, a lock, a pool), what it cost over the window, and the fix, in plain words:
// detect.ts finds them, wording.ts words them.
import type { Finding, Window } from '../../common/types';
import type { ReadModel } from '../../db/index';
import type { FindingThresholds } from '../findings-config';
import { detect } from './detect';
import { word } from './wording';

/** Every finding for the window (and service), most costly first. */
export async function deriveFindings(read: ReadModel, w: Window, th: FindingThresholds): Promise<Finding[]> {
  return (await detect(read, w, th)).map(word).sort((a, b) => b.impactMs - a.impactMs);
}
