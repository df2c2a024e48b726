// Code sites as the agent names them: `file:line` (a lock created there) and `fn (file:line)`
// (where a lock is acquired or held, where a sync call is made), from the first frame of user
// code in a captured stack, in the source when the file's map has been read by then.
import { LOCK_SITES } from '../common/conventions';
import { framesOf, siteName, topUserFrame } from './stack';
import { activeSourceMapper } from './source-mapper';

/** The first user frame of a captured stack, in the source when its file's map is known by now. */
function userFrame(holder: { stack?: string }) {
  const frames = framesOf(holder);
  return topUserFrame(activeSourceMapper()?.map(frames) ?? frames);
}

/** The file:line of the first user frame in a captured stack: a lock's name when it has none. */
export function siteOf(holder: { stack?: string }): string {
  const f = userFrame(holder);
  return f ? siteName(f) : 'unknown';
}

/** The first user frame as `fn (file:line)`; `(unknown)` without one. */
export function codeSiteOf(holder: { stack?: string }): string {
  const f = userFrame(holder);
  return f ? `${f.function || '<anonymous>'} (${siteName(f)})` : LOCK_SITES.unknown;
}
