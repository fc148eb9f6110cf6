// The image rules are shared by every kind that takes input images; they live with the kinds.
export { checkBase64Image, isStrictBase64, MAX_IMAGE_ASPECT_RATIO, MAX_IMAGE_BYTES, MIN_IMAGE_SIDE_PX } from '../kinds/shared/image-check';
