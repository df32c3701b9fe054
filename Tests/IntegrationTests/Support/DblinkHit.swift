/// The effect probe of the read-only attack tests: `public.hit(what)` inserts a row into
/// `public.hits` on a loopback dblink connection as the superuser (SECURITY DEFINER, so dblink
/// needs no password) — a write that a read-only transaction does not stop, so an attack that
/// reaches user code shows as a new row. Run as the superuser in `database`.
enum DblinkHit {
    static func setupSQL(database: String) -> String {
        """
        CREATE EXTENSION dblink;
        CREATE TABLE hits (what text);
        CREATE FUNCTION public.hit(what text) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
          SET search_path = pg_catalog, public AS $$
        BEGIN
          PERFORM dblink_exec(format('host=%s port=%s dbname=\(database) user=postgres client_encoding=UTF8',
                                     current_setting('unix_socket_directories'), current_setting('port')),
                              format('INSERT INTO public.hits VALUES (%L)', what));
          RETURN true;
        END $$;
        """
    }
}
