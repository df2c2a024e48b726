// A thumbnail "render": CPU work of a fixed length on the worker thread.
module.exports = ({ size, ms }) => {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(size + x);
  return { size, checksum: x % 1 };
};
