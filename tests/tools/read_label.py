"""Reads a return label the way a printer and a scanner would: renders the PDF's first page at
300 dpi with PDFium, decodes every barcode in the image with ZXing, and extracts the text.
Prints one JSON object: page size in points, the text, and each barcode's format and value."""
import json
import sys

import pypdfium2 as pdfium
import zxingcpp

document = pdfium.PdfDocument(sys.argv[1])
page = document[0]
width, height = page.get_size()
image = page.render(scale=300 / 72).to_pil()
text = page.get_textpage().get_text_bounded()
barcodes = [
    {"format": str(b.format).split(".")[-1], "text": b.text}
    for b in zxingcpp.read_barcodes(image)
]
print(json.dumps({"pages": len(document), "width": width, "height": height, "text": text, "barcodes": barcodes}))
