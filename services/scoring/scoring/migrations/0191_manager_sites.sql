-- Issue #15: each manager sees their own sites. The mapping (manager -> weekly e-mail address,
-- PostgreSQL login role, sites) is managed through scoring's audited admin API
-- (scoring.managers). The boundary is PostgreSQL, not Grafana (any Grafana viewer can send any
-- SQL to a datasource they may use): every manager logs in with a role of their own, member of
-- `manager_reader` only, which may read nothing but the `<schema>_managers` schema. That schema
-- holds one security_barrier view per reporting view of this schema, filtered by `current_user`
-- through the mapping, so a manager's hand-written SQL returns their sites' rows and no other.
-- Fail-closed: a reporting view added later is NOT readable by managers until a migration runs
-- `SELECT managers_refresh_views();` (the tests check that every reporting view has its filtered
-- twin). National staff are mapped with scope 'all': their role is also a member of
-- `grafana_reader` (every site, every schema's reporting views), as today's board datasource.

CREATE TABLE managers (
    manager_id text PRIMARY KEY,
    network    text NOT NULL,          -- the network whose administrator manages the row
    email      text NOT NULL,          -- the weekly report's address; the only personal datum
    login_role text NOT NULL UNIQUE,   -- mgr_<manager_id>
    scope      text NOT NULL CHECK (scope IN ('sites', 'network', 'all')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

CREATE TABLE manager_sites (
    manager_id text NOT NULL REFERENCES managers (manager_id) ON DELETE CASCADE,
    site_id    text NOT NULL,
    PRIMARY KEY (manager_id, site_id)
);
CREATE INDEX manager_sites_site ON manager_sites (site_id);

-- Who changed which manager, when, from what to what (the manager's own address at most).
CREATE TABLE managers_audit (
    id         bigserial PRIMARY KEY,
    manager_id text NOT NULL,
    network    text NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    before     jsonb,
    after      jsonb
);
CREATE INDEX managers_audit_manager ON managers_audit (manager_id, id);

-- The sites each login role may read: its own sites, or every site of its network (regional
-- staff). Scope 'all' reads everything (see reporting_manager_may_read_all).
CREATE VIEW manager_visible_sites AS
SELECT m.login_role, ms.site_id
FROM managers m JOIN manager_sites ms USING (manager_id) WHERE m.scope = 'sites'
UNION
SELECT m.login_role, s.site_id
FROM managers m JOIN sites s ON s.network = m.network WHERE m.scope = 'network';

-- The weekly report's recipients per site (national staff get no per-site e-mail).
CREATE VIEW manager_report_recipients AS
SELECT v.site_id, m.email
FROM manager_visible_sites v JOIN managers m USING (login_role);

-- The week's free-text suggestions scoring keeps (already redacted upstream), for the managers'
-- boards: only for a site-week of at least the anonymity floor's answers, as the weekly e-mail
-- and survey_responses.reporting_verbatims. Columns named as that view's, so one board reads
-- either; scoring knows the day, not the instant, and no effort answer.
CREATE VIEW reporting_verbatims AS
WITH weeks AS (
    SELECT site_id, date_trunc('week', day)::date AS week_start, sum(count) AS responses
    FROM tallies WHERE item = '__responses__' GROUP BY 1, 2
)
SELECT v.response_id, coalesce(s.network, '') AS network, v.site_id, v.channel, v.motif,
    v.day AS answered_at, w.week_start, reporting_iso_week(w.week_start) AS week,
    v.text AS verbatim, v.satisfaction::text AS satisfaction_globale,
    v.recommandation::text AS recommandation, NULL::text AS effort
FROM verbatims v
JOIN weeks w ON w.site_id = v.site_id AND w.week_start = date_trunc('week', v.day)::date
LEFT JOIN sites s ON s.site_id = v.site_id
WHERE reporting_may_show(w.responses);
GRANT SELECT ON reporting_verbatims TO grafana_reader;

-- The group every manager's login role belongs to. Cluster-wide, as grafana_reader (0002).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'manager_reader') THEN
        CREATE ROLE manager_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- (Re)creates `<schema>_managers.<view>` for every reporting view of this schema that Grafana's
-- reader may read and that has a site_id column, filtered by the caller's mapping. A view
-- without site_id gets no twin: managers cannot read it. Returns the number of views.
-- security_barrier: a caller's own function in a WHERE clause never sees a filtered-out row.
CREATE FUNCTION managers_refresh_views() RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    source text := current_schema();
    target text := current_schema() || '_managers';
    view_name text;
    made integer := 0;
BEGIN
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', target);
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', target);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO manager_reader', target);
    FOR view_name IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = source AND c.relkind IN ('v', 'm') AND c.relname LIKE 'reporting\_%'
          AND has_table_privilege('grafana_reader', c.oid, 'SELECT')
          AND EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid
                      AND a.attname = 'site_id' AND NOT a.attisdropped)
        ORDER BY c.relname
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE VIEW %1$I.%2$I WITH (security_barrier) AS '
            'SELECT * FROM %3$I.%2$I WHERE site_id IN ('
            '  SELECT site_id FROM %3$I.manager_visible_sites WHERE login_role = current_user) '
            'OR EXISTS (SELECT FROM %3$I.managers '
            '  WHERE login_role = current_user AND scope = ''all'')',
            target, view_name, source);
        EXECUTE format('GRANT SELECT ON %I.%I TO manager_reader', target, view_name);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

SELECT managers_refresh_views();

-- Creates or updates a manager's login role (the admin API calls it in the transaction that
-- writes the mapping). The password arrives as a SCRAM-SHA-256 verifier, never in clear, so no
-- statement log can hold it. A role of that name that is not a manager's is never touched.
-- SECURITY DEFINER: the service's runtime user needs EXECUTE only; the owner (the migrator)
-- needs CREATEROLE and ADMIN OPTION on manager_reader and grafana_reader.
CREATE FUNCTION manager_role_put(role_name text, password_verifier text, all_sites boolean)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF role_name !~ '^mgr_[a-z][a-z0-9_]{1,39}$' THEN
        RAISE EXCEPTION 'invalid manager role name' USING ERRCODE = '22023';
    END IF;
    IF password_verifier !~ '^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$' THEN
        RAISE EXCEPTION 'a SCRAM-SHA-256 verifier is expected' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
        IF NOT pg_has_role(role_name, 'manager_reader', 'MEMBER')
           OR pg_has_role(role_name, 'pg_write_all_data', 'MEMBER')
           OR (SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles
               WHERE rolname = role_name) THEN
            RAISE EXCEPTION 'role % exists and is not a manager''s', role_name
                USING ERRCODE = '42710';
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN INHERIT PASSWORD %L', role_name, password_verifier);
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN INHERIT CONNECTION LIMIT 10 PASSWORD %L',
                       role_name, password_verifier);
        EXECUTE format('GRANT manager_reader TO %I', role_name);
    END IF;
    IF all_sites THEN
        EXECUTE format('GRANT grafana_reader TO %I', role_name);
    ELSIF pg_has_role(role_name, 'grafana_reader', 'MEMBER') THEN
        EXECUTE format('REVOKE grafana_reader FROM %I', role_name);
    END IF;
END
$$;

-- Drops a manager's login role (after their mapping rows are gone: an open session of theirs
-- then reads no row at all).
CREATE FUNCTION manager_role_drop(role_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF role_name !~ '^mgr_[a-z][a-z0-9_]{1,39}$' THEN
        RAISE EXCEPTION 'invalid manager role name' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
        IF NOT pg_has_role(role_name, 'manager_reader', 'MEMBER') THEN
            RAISE EXCEPTION 'role % is not a manager''s', role_name USING ERRCODE = '42710';
        END IF;
        EXECUTE format('DROP ROLE %I', role_name);
    END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION manager_role_put(text, text, boolean), manager_role_drop(text)
    FROM PUBLIC;
