-- The purge erases every personal field (address, link secret, last error text) once an
-- invitation expires; an invitation never sent expires at its creation plus the link's
-- validity (`expiry_days` of its rules). Both kinds are found by index.
DROP INDEX invitations_personal_data;
CREATE INDEX invitations_personal_data ON invitations (expires_at)
    WHERE address IS NOT NULL OR token IS NOT NULL OR last_error IS NOT NULL;
CREATE INDEX invitations_unsent_personal_data ON invitations (created_at)
    WHERE expires_at IS NULL AND (address IS NOT NULL OR token IS NOT NULL OR last_error IS NOT NULL);

-- Which network a site's contacts come from: a site manager configures their site's rules only
-- under that network.
CREATE INDEX contacts_site ON contacts (site_id, network);
