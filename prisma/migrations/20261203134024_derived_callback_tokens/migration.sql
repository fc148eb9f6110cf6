-- AlterTable
ALTER TABLE "tasks" ALTER COLUMN "callback_token" DROP NOT NULL;


-- Hand-written (Prisma's schema cannot express triggers): a TRUNCATE of `tenants` (every key gone)
-- tells the API processes to drop their credential caches, as an UPDATE or DELETE of a row does.
-- A statement-level trigger has no row: the payload is '*'.
CREATE OR REPLACE FUNCTION "notify_tenant_change"() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tenant_changes', coalesce(NEW.id, OLD.id, '*'));
  RETURN NULL;
END
$$;

CREATE TRIGGER "tenants_notify_truncate" AFTER TRUNCATE ON "tenants"
FOR EACH STATEMENT EXECUTE FUNCTION "notify_tenant_change"();
