// Where the data lives: a file path is SQLite, a postgres:// (or postgresql://) URL is
// PostgreSQL. The URL's password is kept out of everything that may be printed.

export type DatabaseLocation =
  | { engine: 'sqlite'; path: string }
  | {
      engine: 'postgres';
      /** The URL as given, password included: only for connecting. */
      url: string;
      host: string;
      port: number;
      database: string;
      user: string;
      /** The URL without its password, for messages. */
      display: string;
    };

/** Reads `--db` / STALLSCOPE_DB; throws an Error naming the problem for a malformed URL. */
export function parseLocation(db: string): DatabaseLocation {
  if (!/^postgres(ql)?:\/\//i.test(db)) return { engine: 'sqlite', path: db };
  let url: URL;
  try {
    url = new URL(db);
  } catch {
    throw new Error(`"${redact(db)}" is not a valid PostgreSQL URL; use postgres://user@host:port/database`);
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!database || database.includes('/'))
    throw new Error(`${redactUrl(url)}: name the database, e.g. postgres://user@host:5432/stallscope`);
  const port = url.port ? Number(url.port) : 5432;
  const user = decodeURIComponent(url.username) || process.env.PGUSER || process.env.USER || 'postgres';
  // An empty host is a Unix socket (libpq's ?host=/path); node-postgres reads it from the query.
  const host = url.searchParams.get('host') ?? (url.hostname.replace(/^\[|\]$/g, '') || 'localhost');
  return { engine: 'postgres', url: db, host, port, database, user, display: redactUrl(url) };
}

/** What to print for a location: a path, or the URL without its password. */
export function describeLocation(l: DatabaseLocation): string {
  return l.engine === 'sqlite' ? l.path : l.display;
}

function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '';
  for (const k of [...copy.searchParams.keys()]) if (/pass/i.test(k)) copy.searchParams.set(k, '***');
  return copy.href.replace(/:@/, '@');
}

/** A string that may hold a URL with a password, with the password removed. */
export function redact(text: string): string {
  // Up to the last @ of the line, as URL parsers read it: a password may hold spaces and colons.
  return text.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*):[^\n]*@/gi, '$1@');
}
