-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "cancel_message" TEXT,
ADD COLUMN     "cancel_reason" TEXT;

