import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { migrate } from './schema';

/** Opens (creating if needed) the database that the writer thread owns, and migrates it. */
export function openWriteConnection(path: string): Database.Database {
  const db = openChecked(path, false);
  try {
    db.pragma('journal_mode = WAL');
    // NORMAL with WAL: a committed transaction survives the process being killed; only a power
    // loss can take the last commits back.
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 10000');
    migrate(db);
  } catch (err) {
    db.close();
    throw new Error(`cannot use database ${resolve(path)}: ${(err as Error).message}`);
  }
  return db;
}

/** A connection for queries; WAL lets it read while the writer commits. */
export function openReadConnection(path: string): Database.Database {
  const db = openChecked(path, true);
  db.pragma('busy_timeout = 5000');
  return db;
}

function openChecked(path: string, readonly: boolean): Database.Database {
  const full = resolve(path);
  const dir = dirname(full);
  if (!existsSync(dir)) throw new Error(`cannot open database ${full}: the folder ${dir} does not exist`);
  if (existsSync(full) && statSync(full).isDirectory()) throw new Error(`cannot open database ${full}: it is a folder`);
  try {
    return new Database(full, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw new Error(`cannot open database ${full}: ${(err as Error).message}`);
  }
}
