-- Screen settings beside the chosen indicators, and the audit of every change a manager makes.
ALTER TABLE site_settings ADD COLUMN display jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE site_settings_audit (
    id            bigserial PRIMARY KEY,
    site_id       text NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now(),
    actor_subject text NOT NULL,
    actor_name    text NOT NULL,
    actor_roles   text[] NOT NULL,
    before        jsonb,          -- NULL: the site had never been configured (defaults applied)
    after         jsonb NOT NULL
);
CREATE INDEX site_settings_audit_by_site ON site_settings_audit (site_id, id DESC);

-- An audit trail that the service itself could rewrite would prove nothing: append only.
CREATE FUNCTION site_settings_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'site_settings_audit is append-only';
END $$;
CREATE TRIGGER site_settings_audit_append_only BEFORE UPDATE OR DELETE ON site_settings_audit
    FOR EACH ROW EXECUTE FUNCTION site_settings_audit_is_append_only();

-- The bulk feed and the open-data export read a network's sites.
CREATE INDEX site_indicators_by_network ON site_indicators (network, site_id);
