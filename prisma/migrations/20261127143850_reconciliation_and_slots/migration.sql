-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "cancel_requested_at" TIMESTAMP(3),
ADD COLUMN     "next_poll_at" TIMESTAMP(3),
ADD COLUMN     "poll_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "slots_held" INTEGER NOT NULL DEFAULT 0;

-- CreateIndex
CREATE INDEX "tasks_next_poll_at_idx" ON "tasks"("next_poll_at");

