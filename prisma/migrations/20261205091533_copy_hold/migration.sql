-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "copy_held_until" TIMESTAMP(3);

