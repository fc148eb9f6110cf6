-- DropIndex
DROP INDEX "tasks_next_poll_at_idx";

-- DropIndex
DROP INDEX "tasks_slots_held_idx";

-- DropIndex
DROP INDEX "tasks_slots_wait_since_idx";


-- Hand-written (Prisma 6's schema cannot declare a partial index). Each of these columns is set on
-- the few tasks still in flight and unset on every task kept after it ended, so a full index grows
-- with the whole history and every update of a task writes an entry into it; the queries that use
-- them (slot claims, slot waiters, due polls) ask only for the set ones. Over those rows only, a
-- slot claim's sum and the waiters check at every task's end no longer scan the history, and a
-- task's updates write three fewer index entries while these are unset.
CREATE INDEX "tasks_polled_idx" ON "tasks"("next_poll_at") WHERE "next_poll_at" IS NOT NULL;
CREATE INDEX "tasks_holding_slots_idx" ON "tasks"("slots_held") WHERE "slots_held" > 0;
CREATE INDEX "tasks_waiting_for_slots_idx" ON "tasks"("created_at", "id") WHERE "slots_wait_since" IS NOT NULL;
