-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "request_id" TEXT;

