-- Hand-written (Prisma's schema cannot express triggers): API processes cache tenants by
-- credential and LISTEN on `tenant_changes` (src/tenants/tenant-cache.ts). Any change of a tenant,
-- whoever makes it (CLI, Prisma Studio, plain SQL), tells them at commit to drop their cache.
CREATE FUNCTION "notify_tenant_change"() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tenant_changes', coalesce(NEW.id, OLD.id));
  RETURN NULL;
END
$$;

CREATE TRIGGER "tenants_notify_change" AFTER UPDATE OR DELETE ON "tenants"
FOR EACH ROW EXECUTE FUNCTION "notify_tenant_change"();
