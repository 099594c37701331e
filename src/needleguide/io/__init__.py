"""File and stream I/O: NIfTI, DICOM, PNG/MP4 writing (atomic), OpenIGTLink."""
