-- AlterEnum
ALTER TYPE "task_state" ADD VALUE 'storing';

-- AlterTable
ALTER TABLE "tenants" ADD COLUMN     "result_retention_days" INTEGER;

-- AlterTable
ALTER TABLE "tasks" ADD COLUMN     "files" JSONB,
ADD COLUMN     "files_expired_at" TIMESTAMP(3),
ADD COLUMN     "files_state" TEXT,
ADD COLUMN     "results_expire_at" TIMESTAMP(3),
ADD COLUMN     "storing_since" TIMESTAMP(3);

-- CreateTable
CREATE TABLE "stored_blobs" (
    "sha256" TEXT NOT NULL,
    "size" BIGINT NOT NULL,
    "content_type" TEXT NOT NULL,
    "storage_key" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_stored_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "stored_blobs_pkey" PRIMARY KEY ("sha256")
);

-- CreateTable
CREATE TABLE "result_files" (
    "id" TEXT NOT NULL,
    "task_id" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "output_kind" TEXT NOT NULL,
    "content_type" TEXT NOT NULL,
    "size" BIGINT NOT NULL,
    "sha256" TEXT NOT NULL,
    "storage_key" TEXT NOT NULL,
    "upstream_url" TEXT NOT NULL,
    "stored_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMP(3),

    CONSTRAINT "result_files_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "stored_blobs_last_stored_at_idx" ON "stored_blobs"("last_stored_at");

-- CreateIndex
CREATE INDEX "result_files_expires_at_idx" ON "result_files"("expires_at");

-- CreateIndex
CREATE INDEX "result_files_sha256_idx" ON "result_files"("sha256");

-- CreateIndex
CREATE UNIQUE INDEX "result_files_task_id_index_key" ON "result_files"("task_id", "index");

-- AddForeignKey
ALTER TABLE "result_files" ADD CONSTRAINT "result_files_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "result_files" ADD CONSTRAINT "result_files_sha256_fkey" FOREIGN KEY ("sha256") REFERENCES "stored_blobs"("sha256") ON DELETE RESTRICT ON UPDATE CASCADE;

